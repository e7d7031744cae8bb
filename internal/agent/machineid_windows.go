//go:build windows

package agent

import (
	"fmt"

	"golang.org/x/sys/windows/registry"
)

// MachineID derives the machine id from the MachineGuid that Windows keeps
// in HKLM\SOFTWARE\Microsoft\Cryptography (read from the 64-bit view).
func MachineID() (string, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Cryptography`, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return "", fmt.Errorf("%w: opening HKLM\\SOFTWARE\\Microsoft\\Cryptography: %v", ErrNoMachineID, err)
	}
	defer k.Close()
	guid, _, err := k.GetStringValue("MachineGuid")
	if err != nil {
		return "", fmt.Errorf("%w: reading MachineGuid: %v", ErrNoMachineID, err)
	}
	return hashIdentifiers([]identifier{{"machine-guid", cleanUUID(guid)}})
}
