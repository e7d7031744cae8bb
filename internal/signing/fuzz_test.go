package signing

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzVerifyCommand(f *testing.F) {
	k := seqKey(f)
	c := baseCommand()
	good := SignCommand(k, c)
	f.Add(c.AgentID, c.ID, c.Type, c.Params, c.IssuedAt, c.ExpiresAt, good)
	f.Add("", "", "", []byte(nil), int64(0), int64(0), "")
	f.Add("a:b", ":", "x", []byte(`{"é":[null]}`), int64(-1), int64(1<<62), "====")
	f.Add(c.AgentID, c.ID, c.Type, c.Params, c.IssuedAt, c.ExpiresAt, good[:40]+"\n"+good[40:])
	f.Add(c.AgentID, c.ID, c.Type, []byte{0xff, 0xfe, 0}, c.IssuedAt, c.ExpiresAt, strings.Repeat("A", 88))

	f.Fuzz(func(t *testing.T, agentID, id, typ string, params []byte, issued, expires int64, sig string) {
		in := CommandFields{AgentID: agentID, ID: id, Type: typ, Params: params, IssuedAt: issued, ExpiresAt: expires}
		err := VerifyCommand(k.Public, in, sig)
		if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformedSignature) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		// Accepting anything but the genuine signature of exactly these
		// fields would be a forgery or a malleability bug.
		if err == nil && (sig != SignCommand(k, in)) {
			t.Fatalf("accepted non-genuine signature %q", sig)
		}
		if err == nil && !bytes.Equal(CommandMessage(in), CommandMessage(c)) {
			t.Fatalf("accepted base signature for different fields %+v", in)
		}
		if err := VerifyCommand(k.Public, in, SignCommand(k, in)); err != nil {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func FuzzVerifyBinary(f *testing.F) {
	k := seqKey(f)
	b := baseBinary()
	f.Add(b.Version, b.OS, b.Arch, b.SHA256Hex, SignBinary(k, b))
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, version, goos, arch, digest, sig string) {
		in := BinaryFields{Version: version, OS: goos, Arch: arch, SHA256Hex: digest}
		err := VerifyBinary(k.Public, in, sig)
		if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformedSignature) && !errors.Is(err, ErrMalformedDigest) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if err == nil && sig != SignBinary(k, in) {
			t.Fatalf("accepted non-genuine signature %q", sig)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	f.Add(EncodePublicKey(seqKey(f).Public))
	f.Add(" " + EncodePublicKey(seqKey(f).Public) + "\n")
	f.Add("")
	f.Add("====")
	f.Add(strings.Repeat("A", 43) + "=")
	f.Add(strings.Repeat("/", 43) + "=")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := ParsePublicKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) || pub != nil {
				t.Fatalf("got %x, %v; want nil, ErrBadKey", pub, err)
			}
			return
		}
		if len(pub) != 32 {
			t.Fatalf("parsed %d-byte key", len(pub))
		}
		// Exactly one accepted spelling per key, modulo whitespace.
		if EncodePublicKey(pub) != strings.TrimSpace(s) {
			t.Fatalf("accepted non-canonical %q", s)
		}
	})
}
