package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestSanitizeReport(t *testing.T) {
	disks := []protocol.Disk{{Mount: "", TotalBytes: 1}, {Mount: "/x", TotalBytes: 0}, {Mount: "/ok\x01", Filesystem: "ext4", TotalBytes: 10, UsedBytes: 5}}
	for range 300 {
		disks = append(disks, protocol.Disk{Mount: "/m", TotalBytes: 1})
	}
	r := sanitizeReport(protocol.SystemReport{Hostname: "h\nx", CPUModel: strings.Repeat("é", 300), Kernel: "6.1\x00", CPUCores: -1, Disks: disks})
	if r.Hostname != "h x" || len(r.CPUModel) > 255 || r.Kernel != "6.1?" || r.CPUCores != 0 {
		t.Errorf("texts: %+v", r)
	}
	if len(r.Disks) != maxReportDisks || r.Disks[0].Mount != "/ok?" {
		t.Errorf("%d disks, first %+v", len(r.Disks), r.Disks[0])
	}
	if r.PackageManagers == nil {
		t.Error("package_managers must be a list")
	}
	for _, s := range []string{r.Hostname, r.CPUModel, r.Kernel, r.Disks[0].Mount} {
		if err := protocol.CheckText(s, 1024, false); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestDetectPackageManagers(t *testing.T) {
	present := map[string]bool{"apt-get": true, "paru": true, "docker": true}
	look := func(p string) (string, error) {
		if present[p] {
			return "/usr/bin/" + p, nil
		}
		return "", errors.New("no")
	}
	exists := func(p string) bool { return p == "/home/linuxbrew/.linuxbrew/bin/brew" }
	got := strings.Join(detectPackageManagers(look, exists), ",")
	want := "apt,aur,homebrew,docker"
	if !strings.HasPrefix(got, want) {
		t.Errorf("package managers %q, want %q", got, want)
	}
}

func TestMachineIDHelpers(t *testing.T) {
	out := []byte(`+-o Mac-1234  <class IOPlatformExpertDevice, id 0x100000110>
    {
      "IOPlatformSerialNumber" = "C02XXXXX"
      "IOPlatformUUID" = "1A2B3C4D-5E6F-7081-92A3-B4C5D6E7F809"
    }`)
	if got := parseIORegUUID(out); got != "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809" {
		t.Errorf("parseIORegUUID = %q", got)
	}
	if got := parseIORegUUID([]byte("nothing")); got != "" {
		t.Errorf("parseIORegUUID(nothing) = %q", got)
	}
	for in, want := range map[string]string{
		"{1A2B3C4D-5E6F-7081-92A3-B4C5D6E7F809}": "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809",
		"00000000-0000-0000-0000-000000000000":   "",
		"not-a-uuid":                             "",
	} {
		if got := cleanUUID(in); got != want {
			t.Errorf("cleanUUID(%q) = %q, want %q", in, got, want)
		}
	}
	a, _ := hashIdentifiers([]identifier{{"machine-guid", "x"}})
	b, _ := hashIdentifiers([]identifier{{"io-platform-uuid", "x"}})
	if a == b || !protocol.ValidMachineID(a) {
		t.Errorf("sources must not collide: %s %s", a, b)
	}
	if _, err := hashIdentifiers([]identifier{{"a", ""}}); !errors.Is(err, ErrNoMachineID) {
		t.Errorf("no identifiers: %v", err)
	}
}
