//go:build windows

package agent

import (
	"context"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/redflaghq/redflag/internal/protocol"
)

var (
	kernel32                 = windows.NewLazySystemDLL("kernel32.dll")
	procGetTickCount64       = kernel32.NewProc("GetTickCount64")
	procGlobalMemoryStatusEx = kernel32.NewProc("GlobalMemoryStatusEx")
)

// memoryStatusEx is MEMORYSTATUSEX.
type memoryStatusEx struct {
	Length               uint32
	MemoryLoad           uint32
	TotalPhys            uint64
	AvailPhys            uint64
	TotalPageFile        uint64
	AvailPageFile        uint64
	TotalVirtual         uint64
	AvailVirtual         uint64
	AvailExtendedVirtual uint64
}

func osVersion() string {
	v := windows.RtlGetVersion()
	name := "Windows"
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Windows NT\CurrentVersion`, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if err == nil {
		defer k.Close()
		if pn, _, err := k.GetStringValue("ProductName"); err == nil && pn != "" {
			name = pn
			// Windows 11 still reports "Windows 10" in ProductName.
			if v.BuildNumber >= 22000 {
				name = strings.Replace(name, "Windows 10", "Windows 11", 1)
			}
		}
		if dv, _, err := k.GetStringValue("DisplayVersion"); err == nil && dv != "" {
			name += " " + dv
		}
	}
	return fmt.Sprintf("%s (%d.%d.%d)", name, v.MajorVersion, v.MinorVersion, v.BuildNumber)
}

func platformInventory(ctx context.Context) protocol.SystemReport {
	var r protocol.SystemReport
	v := windows.RtlGetVersion()
	r.OSVersion = osVersion()
	r.Kernel = fmt.Sprintf("NT %d.%d.%d", v.MajorVersion, v.MinorVersion, v.BuildNumber)
	if k, err := registry.OpenKey(registry.LOCAL_MACHINE, `HARDWARE\DESCRIPTION\System\CentralProcessor\0`, registry.QUERY_VALUE); err == nil {
		if s, _, err := k.GetStringValue("ProcessorNameString"); err == nil {
			r.CPUModel = strings.TrimSpace(s)
		}
		k.Close()
	}
	var ms memoryStatusEx
	ms.Length = uint32(unsafe.Sizeof(ms))
	if ok, _, _ := procGlobalMemoryStatusEx.Call(uintptr(unsafe.Pointer(&ms))); ok != 0 {
		r.MemoryBytes = int64(ms.TotalPhys)
	}
	if err := procGetTickCount64.Find(); err == nil {
		ms, _, _ := procGetTickCount64.Call()
		r.UptimeSeconds = int64(ms / 1000)
	}
	r.Disks = windowsDisks()
	r.RebootRequired = registryKeyExists(`SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired`) ||
		registryKeyExists(`SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending`)
	return r
}

func registryKeyExists(path string) bool {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, path, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return false
	}
	k.Close()
	return true
}

// windowsDisks lists the fixed drives.
func windowsDisks() []protocol.Disk {
	buf := make([]uint16, 512)
	n, err := windows.GetLogicalDriveStrings(uint32(len(buf)), &buf[0])
	if err != nil || n == 0 || int(n) > len(buf) {
		return nil
	}
	var out []protocol.Disk
	// The answer is `C:\` NUL `D:\` NUL … NUL: split it on the NULs.
	var roots []string
	start := 0
	for i, c := range buf[:n] {
		if c == 0 {
			if i > start {
				roots = append(roots, windows.UTF16ToString(buf[start:i]))
			}
			start = i + 1
		}
	}
	for _, root := range roots {
		p, err := windows.UTF16PtrFromString(root)
		if err != nil || windows.GetDriveType(p) != windows.DRIVE_FIXED {
			continue
		}
		var free, total, totalFree uint64
		if windows.GetDiskFreeSpaceEx(p, &free, &total, &totalFree) != nil || total == 0 {
			continue
		}
		fsName := make([]uint16, windows.MAX_PATH+1)
		fs := ""
		if windows.GetVolumeInformation(p, nil, 0, nil, nil, nil, &fsName[0], uint32(len(fsName))) == nil {
			fs = windows.UTF16ToString(fsName)
		}
		out = append(out, protocol.Disk{Mount: root, Filesystem: fs, TotalBytes: int64(total), UsedBytes: int64(total - totalFree)})
	}
	return out
}
