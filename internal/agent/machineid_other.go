//go:build !linux && !windows && !darwin

package agent

import "os"

// MachineID derives the machine id from /etc/machine-id or the BSD
// /etc/hostid on platforms without a dedicated implementation.
func MachineID() (string, error) {
	var ids []identifier
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		ids = append(ids, identifier{"machine-id", cleanMachineIDFile(b)})
	}
	if b, err := os.ReadFile("/etc/hostid"); err == nil {
		ids = append(ids, identifier{"hostid", cleanUUID(string(b))})
	}
	return hashIdentifiers(ids)
}
