package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
)

// The machine id (SPEC §4) is 64 lowercase hex characters: the SHA-256 of
// stable hardware identifiers. MachineID is the platform implementation;
// the agent and Register take the id as a value, so tests pass their own,
// and the Linux sources are read through an injectable function.

// ErrNoMachineID means no stable identifier could be read.
var ErrNoMachineID = errors.New("no stable machine identifier found")

// identifier is one named source of a machine id.
type identifier struct{ name, value string }

// hashIdentifiers returns the SHA-256 hex of the identifiers that have a
// value, in order, each as "name=value\n" after a version line; the names
// keep one source's value from ever colliding with another's.
func hashIdentifiers(ids []identifier) (string, error) {
	var b strings.Builder
	b.WriteString("redflag-machine-id-v1\n")
	n := 0
	for _, id := range ids {
		if id.value == "" {
			continue
		}
		b.WriteString(id.name + "=" + id.value + "\n")
		n++
	}
	if n == 0 {
		return "", ErrNoMachineID
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:]), nil
}

// bogusUUIDs are placeholder SMBIOS UUIDs that many boards and images share;
// hashing one would give many machines the same id.
var bogusUUIDs = map[string]bool{
	"00000000-0000-0000-0000-000000000000": true,
	"ffffffff-ffff-ffff-ffff-ffffffffffff": true,
	"03000200-0400-0500-0006-000700080009": true,
	"00020003-0004-0005-0006-000700080009": true,
	"12345678-1234-5678-90ab-cddeefaabbcc": true,
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// cleanUUID lowercases a UUID and returns "" for malformed or known
// placeholder values.
func cleanUUID(s string) string {
	s = strings.ToLower(strings.TrimSpace(strings.Trim(strings.TrimSpace(s), "{}")))
	if !uuidRe.MatchString(s) || bogusUUIDs[s] {
		return ""
	}
	return s
}

var ioregUUIDRe = regexp.MustCompile(`"IOPlatformUUID"\s*=\s*"([^"]+)"`)

// parseIORegUUID extracts IOPlatformUUID from the output of
// `ioreg -rd1 -c IOPlatformExpertDevice`.
func parseIORegUUID(out []byte) string {
	m := ioregUUIDRe.FindSubmatch(out)
	if m == nil {
		return ""
	}
	return cleanUUID(string(m[1]))
}
