//go:build darwin

package agent

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// MachineID derives the machine id from the IOPlatformUUID, read with
// `ioreg -rd1 -c IOPlatformExpertDevice` (run directly, without a shell).
func MachineID() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice").Output()
	if err != nil {
		return "", fmt.Errorf("%w: running ioreg: %v", ErrNoMachineID, err)
	}
	return hashIdentifiers([]identifier{{"io-platform-uuid", parseIORegUUID(out)}})
}
