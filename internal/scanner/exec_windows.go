//go:build windows

package scanner

import (
	"os"
	"time"
)

var passEnv = []string{"PATH", "PATHEXT", "SystemRoot", "SystemDrive", "windir", "ProgramData", "ProgramFiles",
	"ProgramFiles(x86)", "LOCALAPPDATA", "APPDATA", "USERPROFILE", "TEMP", "TMP", "ComSpec", "DOCKER_HOST", "DOCKER_CONFIG"}

const waitDelay = 5 * time.Second

// terminate kills p (sudo is never used on Windows).
func terminate(p *os.Process) error { return p.Kill() }
