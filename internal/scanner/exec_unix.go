//go:build !windows

package scanner

import (
	"os"
	"syscall"
	"time"
)

var passEnv = []string{"PATH", "HOME", "USER", "TMPDIR", "XDG_RUNTIME_DIR", "DOCKER_HOST", "DOCKER_CONFIG"}

// waitDelay is how long Run waits for output pipes after the process was
// killed (a child that inherited them may keep them open).
const waitDelay = 5 * time.Second

// terminate asks p to stop (SIGTERM), which sudo passes on to its command.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
