//go:build linux

package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct{ in, want string }{
		{"NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n", "Ubuntu 24.04.1 LTS"},
		{"NAME=Alpine\nVERSION_ID=3.20.2\n", "Alpine 3.20.2"},
		{"# comment\nNAME='Arch Linux'\n", "Arch Linux"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := parseOSRelease(tt.in); got != tt.want {
			t.Errorf("parseOSRelease(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseCPUInfo(t *testing.T) {
	x86 := "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	arm := "processor\t: 0\nBogoMIPS\t: 108.00\nprocessor\t: 1\nprocessor\t: 2\nprocessor\t: 3\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n"
	for _, tt := range []struct {
		in    string
		model string
		n     int
	}{{x86, "AMD EPYC 7B13", 2}, {arm, "BCM2835", 4}, {"", "", 0}} {
		m, n := parseCPUInfo(tt.in)
		if m != tt.model || n != tt.n {
			t.Errorf("parseCPUInfo = %q, %d; want %q, %d", m, n, tt.model, tt.n)
		}
	}
}

func TestParseMemAndUptime(t *testing.T) {
	if got := parseMemTotal("MemTotal:       16318480 kB\nMemFree: 1 kB\n"); got != 16318480*1024 {
		t.Errorf("parseMemTotal = %d", got)
	}
	if got := parseMemTotal("garbage"); got != 0 {
		t.Errorf("parseMemTotal(garbage) = %d", got)
	}
	if got := parseUptime("350735.47 234388.90\n"); got != 350735 {
		t.Errorf("parseUptime = %d", got)
	}
	if got := parseUptime("-1 0"); got != 0 {
		t.Errorf("parseUptime(-1) = %d", got)
	}
}

func TestDisks(t *testing.T) {
	mounts := `sysfs /sys sysfs rw 0 0
proc /proc proc rw 0 0
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw 0 0
/dev/nvme0n1p1 /boot/efi vfat rw 0 0
/dev/nvme0n1p2 /var/lib/bind-of-root ext4 rw 0 0
/dev/loop3 /snap/core/1 squashfs ro 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0
tank/data /srv/my\040data zfs rw 0 0
server:/export /mnt/nfs nfs4 rw 0 0
/dev/sdb1 /mnt/dead ext4 rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
`
	stat := func(ctx context.Context, path string) (int64, int64, error) {
		switch path {
		case "/mnt/dead":
			return 0, 0, errors.New("timeout")
		case "/boot/efi":
			return 512 << 20, 6 << 20, nil
		}
		return 100 << 30, 40 << 30, nil
	}
	got := collectDisks(context.Background(), parseMounts(mounts), stat)
	want := []protocol.Disk{
		{Mount: "/", Filesystem: "ext4", TotalBytes: 100 << 30, UsedBytes: 40 << 30},
		{Mount: "/boot/efi", Filesystem: "vfat", TotalBytes: 512 << 20, UsedBytes: 6 << 20},
		{Mount: "/srv/my data", Filesystem: "zfs", TotalBytes: 100 << 30, UsedBytes: 40 << 30},
		{Mount: "/mnt/nfs", Filesystem: "nfs4", TotalBytes: 100 << 30, UsedBytes: 40 << 30},
	}
	if len(got) != len(want) {
		t.Fatalf("disks %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("disk %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// A container's overlay root is still reported.
	if d := dataMounts(parseMounts("overlay / overlay rw 0 0\n")); len(d) != 1 {
		t.Errorf("overlay root dropped: %+v", d)
	}
}

func TestCollectInventoryHere(t *testing.T) {
	rep, err := CollectInventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.OSType != "linux" || rep.OSArch == "" || rep.Hostname == "" || rep.CPUCores <= 0 || rep.MemoryBytes <= 0 || rep.Kernel == "" {
		t.Errorf("inventory of this machine: %+v", rep)
	}
	if rep.Disks == nil || rep.PackageManagers == nil {
		t.Error("disks and package_managers must be lists, never null")
	}
	for _, d := range rep.Disks {
		if d.TotalBytes <= 0 || d.UsedBytes < 0 || d.UsedBytes > d.TotalBytes {
			t.Errorf("disk %+v", d)
		}
	}
}

func TestLinuxMachineID(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("not found")
		}
	}
	const mid = "0123456789abcdef0123456789abcdef\n"
	const uuid = "4C4C4544-0042-3510-8052-B4C04F4E3732\n"
	both, err := linuxMachineID(files(map[string]string{"/etc/machine-id": mid, "/sys/class/dmi/id/product_uuid": uuid}))
	if err != nil || !protocol.ValidMachineID(both) {
		t.Fatalf("id %q, %v", both, err)
	}
	again, _ := linuxMachineID(files(map[string]string{"/etc/machine-id": mid, "/sys/class/dmi/id/product_uuid": uuid}))
	if again != both {
		t.Error("the machine id is not stable")
	}
	onlyMID, _ := linuxMachineID(files(map[string]string{"/etc/machine-id": mid}))
	bogusUUID, _ := linuxMachineID(files(map[string]string{"/etc/machine-id": mid, "/sys/class/dmi/id/product_uuid": "03000200-0400-0500-0006-000700080009"}))
	dbus, _ := linuxMachineID(files(map[string]string{"/etc/machine-id": "uninitialized\n", "/var/lib/dbus/machine-id": mid}))
	if onlyMID == both || bogusUUID != onlyMID || dbus != onlyMID {
		t.Errorf("ids: both %s, only machine-id %s, bogus uuid %s, dbus %s", both, onlyMID, bogusUUID, dbus)
	}
	if _, err := linuxMachineID(files(map[string]string{"/etc/machine-id": "00000000000000000000000000000000"})); !errors.Is(err, ErrNoMachineID) {
		t.Errorf("no usable source: %v", err)
	}
	if id, err := MachineID(); err == nil && !protocol.ValidMachineID(id) {
		t.Errorf("MachineID() here = %q", id)
	}
}
