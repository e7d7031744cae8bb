//go:build linux

package agent

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

func osVersion() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := os.ReadFile(p); err == nil {
			if v := parseOSRelease(string(b)); v != "" {
				return v
			}
		}
	}
	return ""
}

func platformInventory(ctx context.Context) protocol.SystemReport {
	var r protocol.SystemReport
	r.OSVersion = osVersion()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		r.CPUModel, r.CPUCores = parseCPUInfo(string(b))
	}
	if r.CPUCores == 0 {
		r.CPUCores = runtime.NumCPU()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		r.MemoryBytes = parseMemTotal(string(b))
	}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		r.UptimeSeconds = parseUptime(string(b))
	}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		r.Disks = collectDisks(ctx, parseMounts(string(b)), statfsTimeout)
	}
	r.RebootRequired = fileExists("/var/run/reboot-required") || fileExists("/run/reboot-required")
	return r
}

// parseOSRelease returns PRETTY_NAME, else NAME and VERSION_ID, of an
// os-release file.
func parseOSRelease(s string) string {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		kv[k] = v
	}
	if v := kv["PRETTY_NAME"]; v != "" {
		return v
	}
	return strings.TrimSpace(kv["NAME"] + " " + kv["VERSION_ID"])
}

// parseCPUInfo returns the CPU model and the number of logical processors
// of /proc/cpuinfo (x86 "model name"; ARM "Hardware", "Model" or
// "CPU part" as fallbacks).
func parseCPUInfo(s string) (string, int) {
	var model, fallback string
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			n++
		case "model name", "cpu model", "cpu":
			if model == "" {
				model = v
			}
		case "Hardware", "Model":
			if fallback == "" {
				fallback = v
			}
		}
	}
	if model == "" {
		model = fallback
	}
	return model, n
}

// parseMemTotal returns MemTotal of /proc/meminfo in bytes.
func parseMemTotal(s string) int64 {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// parseUptime returns the whole seconds of /proc/uptime.
func parseUptime(s string) int64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return 0
	}
	return int64(v)
}

// mount is one line of /proc/self/mounts.
type mount struct{ device, path, fstype string }

// pseudoFS are filesystem types that hold no user data (kernel interfaces,
// memory-backed, container layers, read-only images).
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true,
	"cgroup": true, "cgroup2": true, "securityfs": true, "debugfs": true, "tracefs": true,
	"pstore": true, "bpf": true, "configfs": true, "fusectl": true, "mqueue": true,
	"hugetlbfs": true, "autofs": true, "rpc_pipefs": true, "nsfs": true, "binfmt_misc": true,
	"squashfs": true, "efivarfs": true, "selinuxfs": true, "overlay": true, "aufs": true,
	"nfsd": true, "fuse.gvfsd-fuse": true, "fuse.portal": true, "fuse.lxcfs": true,
	"iso9660": true, "udf": true, "devfs": true, "none": true, "shm": true,
}

// parseMounts reads /proc/self/mounts, unescaping octal escapes in paths.
func parseMounts(s string) []mount {
	var out []mount
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		out = append(out, mount{device: unescapeMount(f[0]), path: unescapeMount(f[1]), fstype: f[2]})
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// dataMounts keeps the mounts that hold data: no pseudo filesystems, no
// kernel trees, each block device once (bind mounts and btrfs subvolumes
// repeat it).
func dataMounts(ms []mount) []mount {
	var out []mount
	seenDev := map[string]bool{}
	for _, m := range ms {
		if pseudoFS[m.fstype] && !(m.fstype == "overlay" && m.path == "/") {
			continue
		}
		if m.path != "/" && hasAnyPrefix(m.path, "/proc/", "/sys/", "/dev/", "/run/", "/snap/", "/var/lib/docker/", "/var/lib/containers/") {
			continue
		}
		if strings.HasPrefix(m.device, "/dev/") {
			if seenDev[m.device] {
				continue
			}
			seenDev[m.device] = true
		}
		out = append(out, m)
	}
	return out
}

func hasAnyPrefix(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// statfsFunc returns the total and used bytes of the filesystem at path.
type statfsFunc func(ctx context.Context, path string) (total, used int64, err error)

// collectDisks stats the data mounts.
func collectDisks(ctx context.Context, ms []mount, stat statfsFunc) []protocol.Disk {
	disks := []protocol.Disk{}
	for _, m := range dataMounts(ms) {
		total, used, err := stat(ctx, m.path)
		if err != nil || total <= 0 {
			continue
		}
		disks = append(disks, protocol.Disk{Mount: m.path, Filesystem: m.fstype, TotalBytes: total, UsedBytes: used})
		if len(disks) == maxReportDisks {
			break
		}
	}
	return disks
}

// statfsTimeout runs statfs(2) with a bound: a dead network mount can
// block it forever, and the inventory must not hang with it.
func statfsTimeout(ctx context.Context, path string) (int64, int64, error) {
	type res struct {
		total, used int64
		err         error
	}
	ch := make(chan res, 1)
	go func() {
		var st syscall.Statfs_t
		if err := syscall.Statfs(path, &st); err != nil {
			ch <- res{err: err}
			return
		}
		bs := int64(st.Frsize)
		if bs <= 0 {
			bs = int64(st.Bsize)
		}
		ch <- res{total: int64(st.Blocks) * bs, used: int64(st.Blocks-st.Bfree) * bs}
	}()
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.total, r.used, r.err
	case <-t.C:
		return 0, 0, context.DeadlineExceeded
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}
