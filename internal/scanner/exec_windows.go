//go:build windows

package scanner

import "time"

var passEnv = []string{"PATH", "PATHEXT", "SystemRoot", "SystemDrive", "windir", "ProgramData", "ProgramFiles",
	"ProgramFiles(x86)", "LOCALAPPDATA", "APPDATA", "USERPROFILE", "TEMP", "TMP", "ComSpec", "DOCKER_HOST", "DOCKER_CONFIG"}

const waitDelay = 5 * time.Second
