//go:build !windows && !darwin

package agent

import "strings"

// cleanMachineIDFile accepts the 32 lowercase hex characters of
// /etc/machine-id (systemd) and returns "" for anything else, including the
// all-zero and "uninitialized" values of an unprovisioned image.
func cleanMachineIDFile(b []byte) string {
	s := strings.ToLower(strings.TrimSpace(string(b)))
	if len(s) != 32 || strings.Trim(s, "0") == "" {
		return ""
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return ""
		}
	}
	return s
}
