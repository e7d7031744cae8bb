package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func seqKey(t testing.TB) *Key {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	k, err := KeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func otherKey(t testing.TB) *Key {
	t.Helper()
	k, err := KeyFromSeed(bytes.Repeat([]byte{0xab}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func baseCommand() CommandFields {
	return CommandFields{
		AgentID:   "3f2b6c1e-8a4d-4e7b-9c2a-1d5e6f7a8b9c",
		ID:        "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
		Type:      "install_updates",
		Params:    []byte(`{"packages":[{"name":"café","v":"1.0"}],"reboot":false}`),
		IssuedAt:  1735689600,
		ExpiresAt: 1735689900,
	}
}

func baseBinary() BinaryFields {
	return BinaryFields{Version: "1.4.2", OS: "linux", Arch: "amd64", SHA256Hex: SHA256Hex([]byte("agent"))}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.Public.Equal(b.Public) {
		t.Fatal("two generated keys are equal")
	}
	for _, k := range []*Key{a, b} {
		if len(k.ID) != 16 || strings.Trim(k.ID, "0123456789abcdef") != "" || k.ID != KeyID(k.Public) {
			t.Errorf("bad key id %q", k.ID)
		}
		if !k.Private.Public().(ed25519.PublicKey).Equal(k.Public) {
			t.Error("Public does not match Private")
		}
		c := baseCommand()
		if err := VerifyCommand(k.Public, c, SignCommand(k, c)); err != nil {
			t.Errorf("round trip: %v", err)
		}
	}
}

func TestKeyFromSeedRejectsBadLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := KeyFromSeed(make([]byte, n)); !errors.Is(err, ErrBadKey) {
			t.Errorf("seed of %d bytes: err = %v, want ErrBadKey", n, err)
		}
	}
}

func TestKeyFromSeedCopiesSeed(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	k, err := KeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), k.Private...)
	seed[0] ^= 0xff
	if !bytes.Equal(k.Private, want) {
		t.Error("Key aliases the caller's seed slice")
	}
}

func TestParsePublicKey(t *testing.T) {
	k := seqKey(t)
	good := EncodePublicKey(k.Public)
	tests := []struct {
		name, in string
		wantErr  bool
	}{
		{"canonical", good, false},
		{"surrounding whitespace", "  " + good + "\n", false},
		{"empty", "", true},
		{"only whitespace", " \n\t", true},
		{"not base64", "not a key!", true},
		{"unpadded", strings.TrimRight(good, "="), true},
		{"url alphabet", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), true},
		{"embedded newline", good[:10] + "\n" + good[10:], true},
		{"31 bytes", base64.StdEncoding.EncodeToString(make([]byte, 31)), true},
		{"33 bytes", base64.StdEncoding.EncodeToString(make([]byte, 33)), true},
		{"64-byte private key", base64.StdEncoding.EncodeToString(k.Private), true},
		{"non-canonical trailing bits", setUnusedBit(good), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := ParsePublicKey(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadKey) {
					t.Fatalf("err = %v, want ErrBadKey", err)
				}
				return
			}
			if err != nil || !pub.Equal(k.Public) {
				t.Fatalf("got %x, %v", pub, err)
			}
		})
	}
}

func TestCommandMessageIsVerbatim(t *testing.T) {
	// ':' never occurs in real ids/types, but the message must still render
	// fields exactly rather than escaping or rejecting them.
	c := CommandFields{AgentID: "a:b", ID: "", Type: "t y", Params: nil, IssuedAt: -1, ExpiresAt: 9223372036854775807}
	want := "redflag-command-v1:a:b::t y:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:-1:9223372036854775807"
	if got := string(CommandMessage(c)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	b := BinaryFields{Version: "1:2", OS: "", Arch: "x", SHA256Hex: "ABC"}
	if got := string(BinaryMessage(b)); got != "redflag-agent-v1:1:2::x:ABC" {
		t.Errorf("BinaryMessage = %s", got)
	}
}

func TestVerifyCommandTamper(t *testing.T) {
	k := seqKey(t)
	base := baseCommand()
	sig := SignCommand(k, base)
	if err := VerifyCommand(k.Public, base, sig); err != nil {
		t.Fatalf("untampered: %v", err)
	}

	tests := []struct {
		name   string
		mutate func(*CommandFields)
	}{
		{"agent id", func(c *CommandFields) { c.AgentID = "3f2b6c1e-8a4d-4e7b-9c2a-1d5e6f7a8b9d" }},
		{"id", func(c *CommandFields) { c.ID = "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d4f" }},
		{"type", func(c *CommandFields) { c.Type = "reboot" }},
		{"issued at", func(c *CommandFields) { c.IssuedAt++ }},
		{"expires at", func(c *CommandFields) { c.ExpiresAt += 3600 }},
		{"params reencoded with space", func(c *CommandFields) { c.Params = append(c.Params[:len(c.Params)-1:len(c.Params)-1], ' ', '}') }},
		{"params empty", func(c *CommandFields) { c.Params = nil }},
		// Shifting text between fields must not keep the signature valid.
		{"boundary shift", func(c *CommandFields) { c.AgentID += ":" + c.ID[:4]; c.ID = c.ID[4:] }},
	}
	for i := range base.Params {
		tests = append(tests, struct {
			name   string
			mutate func(*CommandFields)
		}{"params byte " + strconv.Itoa(i), func(c *CommandFields) { c.Params[i] ^= 0x01 }})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Params = bytes.Clone(base.Params)
			tt.mutate(&c)
			if err := VerifyCommand(k.Public, c, sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
		})
	}

	t.Run("other key", func(t *testing.T) {
		err := VerifyCommand(otherKey(t).Public, base, sig)
		if !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
		if !strings.Contains(err.Error(), otherKey(t).ID) {
			t.Errorf("error should name the key id: %v", err)
		}
	})
	t.Run("signed by other key", func(t *testing.T) {
		if err := VerifyCommand(k.Public, base, SignCommand(otherKey(t), base)); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("flipped signature bit", func(t *testing.T) {
		raw, _ := base64.StdEncoding.DecodeString(sig)
		for _, i := range []int{0, 31, 32, 63} {
			bad := bytes.Clone(raw)
			bad[i] ^= 0x04
			if err := VerifyCommand(k.Public, base, base64.StdEncoding.EncodeToString(bad)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("byte %d: err = %v, want ErrBadSignature", i, err)
			}
		}
	})
	t.Run("bad public key", func(t *testing.T) {
		for _, pub := range []ed25519.PublicKey{nil, k.Public[:31], append(bytes.Clone(k.Public), 0)} {
			if err := VerifyCommand(pub, base, sig); !errors.Is(err, ErrBadKey) {
				t.Errorf("pub len %d: err = %v, want ErrBadKey", len(pub), err)
			}
		}
	})
	for name, s := range malformedSignatures(sig) {
		t.Run("malformed "+name, func(t *testing.T) {
			if err := VerifyCommand(k.Public, base, s); !errors.Is(err, ErrMalformedSignature) {
				t.Fatalf("err = %v, want ErrMalformedSignature", err)
			}
		})
	}
}

func TestVerifyBinaryTamper(t *testing.T) {
	k := seqKey(t)
	base := baseBinary()
	sig := SignBinary(k, base)
	if err := VerifyBinary(k.Public, base, sig); err != nil {
		t.Fatalf("untampered: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*BinaryFields)
	}{
		{"version", func(b *BinaryFields) { b.Version = "1.4.3" }},
		{"os", func(b *BinaryFields) { b.OS = "windows" }},
		{"arch", func(b *BinaryFields) { b.Arch = "arm64" }},
		{"sha256", func(b *BinaryFields) { b.SHA256Hex = SHA256Hex([]byte("agenT")) }},
		{"sha256 last nibble", func(b *BinaryFields) {
			b.SHA256Hex = b.SHA256Hex[:63] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", b.SHA256Hex[63])+1)%16])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base
			tt.mutate(&b)
			if err := VerifyBinary(k.Public, b, sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
		})
	}
	t.Run("other key", func(t *testing.T) {
		if err := VerifyBinary(otherKey(t).Public, base, sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("bad public key", func(t *testing.T) {
		if err := VerifyBinary(nil, base, sig); !errors.Is(err, ErrBadKey) {
			t.Fatalf("err = %v, want ErrBadKey", err)
		}
	})
	for _, d := range []string{"", strings.ToUpper(base.SHA256Hex), base.SHA256Hex[:63], base.SHA256Hex + "0", "g" + base.SHA256Hex[1:]} {
		t.Run("malformed digest "+d, func(t *testing.T) {
			b := base
			b.SHA256Hex = d
			if err := VerifyBinary(k.Public, b, SignBinary(k, b)); !errors.Is(err, ErrMalformedDigest) {
				t.Fatalf("err = %v, want ErrMalformedDigest", err)
			}
		})
	}
	for name, s := range malformedSignatures(sig) {
		t.Run("malformed "+name, func(t *testing.T) {
			if err := VerifyBinary(k.Public, base, s); !errors.Is(err, ErrMalformedSignature) {
				t.Fatalf("err = %v, want ErrMalformedSignature", err)
			}
		})
	}
}

// malformedSignatures returns spellings of (or near) sig that must be
// rejected before any cryptography runs.
func malformedSignatures(sig string) map[string]string {
	raw, _ := base64.StdEncoding.DecodeString(sig)
	return map[string]string{
		"empty":            "",
		"not base64":       "this is not a signature!",
		"unpadded":         strings.TrimRight(sig, "="),
		"url alphabet":     base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 32)),
		"embedded newline": sig[:40] + "\n" + sig[40:],
		"trailing newline": sig + "\n",
		"leading space":    " " + sig,
		"63 bytes":         base64.StdEncoding.EncodeToString(raw[:63]),
		"65 bytes":         base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0)),
		"hex encoded":      strings.Repeat("ab", 64),
		"non-canonical":    setUnusedBit(sig),
	}
}

// setUnusedBit sets a padding bit in the last base64 character of a padded
// encoding: encoding/base64 still decodes it to the same bytes, but it is not
// the canonical spelling.
func setUnusedBit(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := len(strings.TrimRight(s, "=")) - 1
	return s[:i] + string(alphabet[strings.IndexByte(alphabet, s[i])|1]) + s[i+1:]
}

func TestSetUnusedBitStillDecodes(t *testing.T) {
	sig := SignCommand(seqKey(t), baseCommand())
	for _, s := range []string{sig, EncodePublicKey(seqKey(t).Public)} {
		want, _ := base64.StdEncoding.DecodeString(s)
		got, err := base64.StdEncoding.DecodeString(setUnusedBit(s))
		if err != nil || !bytes.Equal(got, want) || setUnusedBit(s) == s {
			t.Fatalf("setUnusedBit(%s) = %s does not decode to the same bytes: %v", s, setUnusedBit(s), err)
		}
	}
}
