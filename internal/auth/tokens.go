package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Token prefixes make leaked tokens easy to recognise (and to scan for) and
// tell the kinds apart at a glance.
const (
	PrefixSession      = "rfs_"
	PrefixAPIToken     = "rfu_"
	PrefixRegistration = "rfr_"
	PrefixRefresh      = "rft_"
	PrefixSetup        = "rfsetup_"
)

// NewToken returns prefix + 32 random bytes (base64url) and the SHA-256 hex
// of the whole text, which is all the database keeps.
func NewToken(prefix string) (plain, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	plain = prefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, HashToken(plain)
}

// HashToken is the stored form of a token.
func HashToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// LooksLike reports whether s is a plausible token of the given prefix, so
// junk can be refused before it costs a database read.
func LooksLike(s, prefix string) bool {
	return strings.HasPrefix(s, prefix) && len(s) == len(prefix)+43
}
