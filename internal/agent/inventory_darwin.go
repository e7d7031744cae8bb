//go:build darwin

package agent

import (
	"context"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redflaghq/redflag/internal/protocol"
)

func osVersion() string {
	if v, err := unix.Sysctl("kern.osproductversion"); err == nil && v != "" {
		return "macOS " + v
	}
	return "macOS"
}

func platformInventory(ctx context.Context) protocol.SystemReport {
	var r protocol.SystemReport
	r.OSVersion = osVersion()
	if v, err := unix.Sysctl("kern.osrelease"); err == nil {
		r.Kernel = "Darwin " + v
	}
	if v, err := unix.Sysctl("machdep.cpu.brand_string"); err == nil {
		r.CPUModel = v
	}
	if v, err := unix.SysctlUint64("hw.memsize"); err == nil {
		r.MemoryBytes = int64(v)
	}
	if tv, err := unix.SysctlTimeval("kern.boottime"); err == nil {
		r.UptimeSeconds = int64(time.Since(time.Unix(tv.Sec, int64(tv.Usec)*1000)) / time.Second)
	}
	r.Disks = darwinDisks()
	return r
}

// darwinDisks lists the root volume, the data volume and external
// volumes; the other APFS system volumes share their container's space.
func darwinDisks() []protocol.Disk {
	n, err := unix.Getfsstat(nil, unix.MNT_NOWAIT)
	if err != nil || n <= 0 {
		return nil
	}
	buf := make([]unix.Statfs_t, n)
	n, err = unix.Getfsstat(buf, unix.MNT_NOWAIT)
	if err != nil {
		return nil
	}
	var out []protocol.Disk
	for _, st := range buf[:n] {
		path, from, fs := cString(st.Mntonname[:]), cString(st.Mntfromname[:]), cString(st.Fstypename[:])
		if !strings.HasPrefix(from, "/dev/") {
			continue
		}
		if path != "/" && path != "/System/Volumes/Data" && !strings.HasPrefix(path, "/Volumes/") {
			continue
		}
		bs := int64(st.Bsize)
		out = append(out, protocol.Disk{Mount: path, Filesystem: fs, TotalBytes: int64(st.Blocks) * bs,
			UsedBytes: int64(st.Blocks-st.Bfree) * bs})
	}
	return out
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
