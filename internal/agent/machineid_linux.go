//go:build linux

package agent

import (
	"fmt"
	"os"
)

// MachineID derives the machine id from /etc/machine-id (or the D-Bus copy
// of it) and, when readable (it needs root), the SMBIOS product UUID. The
// agent runs as root, so register and run see the same sources.
func MachineID() (string, error) { return linuxMachineID(os.ReadFile) }

func linuxMachineID(read func(string) ([]byte, error)) (string, error) {
	var mid string
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := read(p); err == nil {
			if mid = cleanMachineIDFile(b); mid != "" {
				break
			}
		}
	}
	var product string
	if b, err := read("/sys/class/dmi/id/product_uuid"); err == nil {
		product = cleanUUID(string(b))
	}
	id, err := hashIdentifiers([]identifier{{"machine-id", mid}, {"product-uuid", product}})
	if err != nil {
		return "", fmt.Errorf("%w: /etc/machine-id is missing or empty and the SMBIOS product UUID is unreadable (run `systemd-machine-id-setup`, or run the agent as root)", err)
	}
	return id, nil
}
