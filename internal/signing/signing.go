// Package signing implements RedFlag's Ed25519 key handling and the
// signature envelopes for agent commands and agent binaries.
//
// The signed message formats are part of the wire contract (agents written in
// other languages must reproduce them byte for byte); testdata/kat.json holds
// known-answer vectors for them.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrBadSignature means the signature is well formed but does not verify
	// for this key and message (tampered data, or signed by another key).
	ErrBadSignature = errors.New("signing: signature does not verify")
	// ErrMalformedSignature means the signature is not canonical padded
	// standard base64 of exactly 64 bytes.
	ErrMalformedSignature = errors.New("signing: malformed signature")
	// ErrBadKey means a public key, seed or key file does not hold a usable
	// Ed25519 key.
	ErrBadKey = errors.New("signing: invalid key")
	// ErrInsecureKeyFile means a private key file is readable or writable by
	// group or others.
	ErrInsecureKeyFile = errors.New("signing: key file permissions too open")
	// ErrMalformedDigest means a binary SHA-256 is not 64 lowercase hex
	// characters.
	ErrMalformedDigest = errors.New("signing: malformed sha256 hex digest")
)

// Key is an Ed25519 key pair with its derived key id.
type Key struct {
	ID      string
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
}

// KeyID returns the first 16 lowercase hex characters of SHA-256(pub).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SHA256Hex returns the lowercase hex SHA-256 of b, as used in both
// signature envelopes.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// GenerateKey creates a new random key pair using crypto/rand.
func GenerateKey() (*Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: generating Ed25519 key: %w", err)
	}
	return &Key{ID: KeyID(pub), Private: priv, Public: pub}, nil
}

// KeyFromSeed derives the key pair from a 32-byte Ed25519 seed (RFC 8032
// private key).
func KeyFromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed must be %d bytes, got %d", ErrBadKey, ed25519.SeedSize, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &Key{ID: KeyID(pub), Private: priv, Public: pub}, nil
}

// EncodePublicKey returns the padded standard base64 form of pub.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses padded standard base64 of a 32-byte Ed25519 public
// key. Surrounding whitespace is ignored because keys are often pasted into
// config files or env vars with a trailing newline.
func ParsePublicKey(b64 string) (ed25519.PublicKey, error) {
	s := strings.TrimSpace(b64)
	if s == "" {
		return nil, fmt.Errorf("%w: public key is empty", ErrBadKey)
	}
	raw, err := decodeCanonical(s)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not padded standard base64 (e.g. as printed by EncodePublicKey): %v", ErrBadKey, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key must decode to %d bytes, got %d", ErrBadKey, ed25519.PublicKeySize, len(raw))
	}
	return ed25519.PublicKey(raw), nil
}

// decodeCanonical decodes padded standard base64 and rejects any
// non-canonical spelling (embedded CR/LF, which encoding/base64 silently
// skips, or non-zero trailing bits) so each value has exactly one encoding.
func decodeCanonical(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(raw) != s {
		return nil, errors.New("non-canonical base64 encoding")
	}
	return raw, nil
}

// sign panics if k holds no valid private key: that is a programming error,
// since keys only come from GenerateKey, KeyFromSeed or LoadOrCreateKeyFile.
func sign(k *Key, msg []byte) string {
	if k == nil || len(k.Private) != ed25519.PrivateKeySize {
		panic("signing: Sign called with a nil or invalid private key")
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.Private, msg))
}

// verify returns nil, or an error wrapping ErrBadKey, ErrMalformedSignature
// or ErrBadSignature. what describes the signed object for error messages.
func verify(pub ed25519.PublicKey, msg []byte, sigB64, what string) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key must be %d bytes, got %d", ErrBadKey, ed25519.PublicKeySize, len(pub))
	}
	sig, err := decodeCanonical(sigB64)
	if err != nil {
		return fmt.Errorf("%w: %s signature is not padded standard base64: %v", ErrMalformedSignature, what, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: %s signature must decode to %d bytes, got %d", ErrMalformedSignature, what, ed25519.SignatureSize, len(sig))
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w: %s was not signed by key %s or was modified after signing", ErrBadSignature, what, KeyID(pub))
	}
	return nil
}
