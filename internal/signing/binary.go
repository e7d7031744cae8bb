package signing

import (
	"crypto/ed25519"
	"fmt"
)

const binaryPrefix = "redflag-agent-v1:"

// BinaryFields are the signed parts of an agent binary release.
//
// Version, OS and Arch (e.g. "1.4.2", "linux", "amd64") never contain ':',
// so the ':'-joined message is unambiguous; BinaryMessage renders them
// verbatim regardless.
type BinaryFields struct {
	Version string
	OS      string
	Arch    string
	// SHA256Hex is the lowercase hex SHA-256 of the binary (see SHA256Hex).
	SHA256Hex string
}

// BinaryMessage returns the exact signed text:
//
//	redflag-agent-v1:{version}:{os}:{arch}:{sha256_hex(binary)}
func BinaryMessage(b BinaryFields) []byte {
	return []byte(binaryPrefix + b.Version + ":" + b.OS + ":" + b.Arch + ":" + b.SHA256Hex)
}

// SignBinary returns the base64 Ed25519 signature of BinaryMessage(b).
// It panics if k is nil or has no valid private key. Callers should pass a
// digest from SHA256Hex; a digest that is not 64 lowercase hex characters
// yields a signature VerifyBinary never accepts.
func SignBinary(k *Key, b BinaryFields) string {
	return sign(k, BinaryMessage(b))
}

// VerifyBinary checks sigB64 against BinaryMessage(b). It returns an error
// wrapping ErrMalformedDigest, ErrBadKey, ErrMalformedSignature or
// ErrBadSignature.
//
// The caller must separately check that b.SHA256Hex is the hash of the bytes
// it is about to run.
func VerifyBinary(pub ed25519.PublicKey, b BinaryFields, sigB64 string) error {
	// An uppercase digest would sign a different message than other
	// implementations produce, so reject it instead of failing obscurely.
	if !isLowerHex64(b.SHA256Hex) {
		return fmt.Errorf("%w: got %q, want 64 lowercase hex characters", ErrMalformedDigest, b.SHA256Hex)
	}
	what := fmt.Sprintf("agent binary %q %s/%s", b.Version, b.OS, b.Arch)
	return verify(pub, BinaryMessage(b), sigB64, what)
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
