package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"unicode/utf8"
)

// katFile mirrors testdata/kat.json, which other implementations (e.g. the
// agent in another language) use to check themselves.
type katFile struct {
	Description    string `json:"description"`
	CommandVectors []struct {
		katKey
		AgentID         string `json:"agent_id"`
		ID              string `json:"id"`
		Type            string `json:"type"`
		Params          string `json:"params"`
		IssuedAt        int64  `json:"issued_at"`
		ExpiresAt       int64  `json:"expires_at"`
		ParamsSHA256Hex string `json:"params_sha256_hex"`
		katOutput
	} `json:"command_vectors"`
	BinaryVectors []struct {
		katKey
		Version       string `json:"version"`
		OS            string `json:"os"`
		Arch          string `json:"arch"`
		BinaryContent string `json:"binary_content"`
		SHA256Hex     string `json:"sha256_hex"`
		katOutput
	} `json:"binary_vectors"`
}

type katKey struct {
	Name         string `json:"name"`
	SeedHex      string `json:"seed_hex"`
	PublicKeyB64 string `json:"public_key_b64"`
	KeyID        string `json:"key_id"`
}

type katOutput struct {
	Message      string `json:"message"`
	SignatureB64 string `json:"signature_b64"`
}

func loadKAT(t *testing.T) katFile {
	t.Helper()
	data, err := os.ReadFile("testdata/kat.json")
	if err != nil {
		t.Fatal(err)
	}
	var kat katFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kat); err != nil {
		t.Fatalf("parsing kat.json: %v", err)
	}
	if len(kat.CommandVectors) < 3 || len(kat.BinaryVectors) < 3 {
		t.Fatalf("kat.json needs >= 3 vectors of each kind, has %d command and %d binary",
			len(kat.CommandVectors), len(kat.BinaryVectors))
	}
	return kat
}

// checkKATKey derives the key pair with the stdlib alone, then checks the
// package agrees.
func checkKATKey(t *testing.T, v katKey) (*Key, ed25519.PrivateKey) {
	t.Helper()
	seed, err := hex.DecodeString(v.SeedHex)
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("bad seed_hex %q", v.SeedHex)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	if got := base64.StdEncoding.EncodeToString(pub); got != v.PublicKeyB64 {
		t.Errorf("stdlib public key = %s, kat says %s", got, v.PublicKeyB64)
	}
	sum := sha256.Sum256(pub)
	if got := hex.EncodeToString(sum[:])[:16]; got != v.KeyID {
		t.Errorf("stdlib key id = %s, kat says %s", got, v.KeyID)
	}

	k, err := KeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != v.KeyID || KeyID(k.Public) != v.KeyID {
		t.Errorf("Key.ID = %s, KeyID = %s, want %s", k.ID, KeyID(k.Public), v.KeyID)
	}
	if EncodePublicKey(k.Public) != v.PublicKeyB64 {
		t.Errorf("EncodePublicKey = %s, want %s", EncodePublicKey(k.Public), v.PublicKeyB64)
	}
	parsed, err := ParsePublicKey(v.PublicKeyB64)
	if err != nil || !parsed.Equal(pub) {
		t.Errorf("ParsePublicKey(%s) = %x, %v", v.PublicKeyB64, parsed, err)
	}
	return k, priv
}

// checkKATSignature verifies the expected signature with the stdlib alone,
// then checks the package produces and accepts the same one.
func checkKATSignature(t *testing.T, priv ed25519.PrivateKey, out katOutput, gotSig string, verifyErr error) {
	t.Helper()
	sig, err := base64.StdEncoding.DecodeString(out.SignatureB64)
	if err != nil {
		t.Fatalf("kat signature is not base64: %v", err)
	}
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), []byte(out.Message), sig) {
		t.Error("ed25519.Verify rejects the kat signature over the kat message")
	}
	if std := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(out.Message))); std != out.SignatureB64 {
		t.Errorf("ed25519.Sign = %s, kat says %s", std, out.SignatureB64)
	}
	if gotSig != out.SignatureB64 {
		t.Errorf("package signature = %s, want %s", gotSig, out.SignatureB64)
	}
	if verifyErr != nil {
		t.Errorf("package verify: %v", verifyErr)
	}
}

func TestKATCommand(t *testing.T) {
	kat := loadKAT(t)
	var sawUnicode, sawNested bool
	for _, v := range kat.CommandVectors {
		t.Run(v.Name, func(t *testing.T) {
			k, priv := checkKATKey(t, v.katKey)
			params := []byte(v.Params)
			if !json.Valid(params) {
				t.Fatalf("params is not valid JSON: %s", v.Params)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, params); err != nil || compact.String() != v.Params {
				t.Errorf("params is not compact JSON: %s", v.Params)
			}
			if utf8.RuneCount(params) != len(params) {
				sawUnicode = true
			}
			if bytes.Count(params, []byte("{")) > 1 {
				sawNested = true
			}

			sum := sha256.Sum256(params)
			if got := hex.EncodeToString(sum[:]); got != v.ParamsSHA256Hex {
				t.Errorf("sha256(params) = %s, kat says %s", got, v.ParamsSHA256Hex)
			}
			// The message is rebuilt from the literal JSON fields, not by the
			// package, so a bug in CommandMessage cannot hide here.
			want := "redflag-command-v1:" + v.AgentID + ":" + v.ID + ":" + v.Type + ":" +
				v.ParamsSHA256Hex + ":" + strconv.FormatInt(v.IssuedAt, 10) + ":" + strconv.FormatInt(v.ExpiresAt, 10)
			if want != v.Message {
				t.Errorf("kat message inconsistent with its fields:\n got %s\nwant %s", v.Message, want)
			}

			c := CommandFields{AgentID: v.AgentID, ID: v.ID, Type: v.Type, Params: params, IssuedAt: v.IssuedAt, ExpiresAt: v.ExpiresAt}
			if got := string(CommandMessage(c)); got != v.Message {
				t.Errorf("CommandMessage:\n got %s\nwant %s", got, v.Message)
			}
			checkKATSignature(t, priv, v.katOutput, SignCommand(k, c), VerifyCommand(k.Public, c, v.SignatureB64))
		})
	}
	if !sawUnicode || !sawNested {
		t.Errorf("kat.json must cover non-ASCII params (%v) and nested JSON params (%v)", sawUnicode, sawNested)
	}
}

func TestKATBinary(t *testing.T) {
	kat := loadKAT(t)
	for _, v := range kat.BinaryVectors {
		t.Run(v.Name, func(t *testing.T) {
			k, priv := checkKATKey(t, v.katKey)
			sum := sha256.Sum256([]byte(v.BinaryContent))
			if got := hex.EncodeToString(sum[:]); got != v.SHA256Hex {
				t.Errorf("sha256(binary_content) = %s, kat says %s", got, v.SHA256Hex)
			}
			if got := SHA256Hex([]byte(v.BinaryContent)); got != v.SHA256Hex {
				t.Errorf("SHA256Hex = %s, want %s", got, v.SHA256Hex)
			}
			want := "redflag-agent-v1:" + v.Version + ":" + v.OS + ":" + v.Arch + ":" + v.SHA256Hex
			if want != v.Message {
				t.Errorf("kat message inconsistent with its fields:\n got %s\nwant %s", v.Message, want)
			}
			b := BinaryFields{Version: v.Version, OS: v.OS, Arch: v.Arch, SHA256Hex: v.SHA256Hex}
			if got := string(BinaryMessage(b)); got != v.Message {
				t.Errorf("BinaryMessage:\n got %s\nwant %s", got, v.Message)
			}
			checkKATSignature(t, priv, v.katOutput, SignBinary(k, b), VerifyBinary(k.Public, b, v.SignatureB64))
		})
	}
}

// TestKATPinned pins values that do not come from kat.json, so regenerating
// the file with a broken implementation cannot pass unnoticed. The RFC 8032
// and empty-string SHA-256 values are published constants; the rest were
// cross-checked against Python's cryptography (OpenSSL) package.
func TestKATPinned(t *testing.T) {
	rfcSeed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	k, err := KeyFromSeed(rfcSeed)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(k.Public); got != "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" {
		t.Errorf("RFC 8032 test 1 public key = %s", got)
	}
	if got := SHA256Hex(nil); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("SHA256Hex(nil) = %s", got)
	}

	seq := make([]byte, 32)
	for i := range seq {
		seq[i] = byte(i)
	}
	k, err = KeyFromSeed(seq)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "56475aa75463474c" || EncodePublicKey(k.Public) != "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=" {
		t.Errorf("seed 00..1f: id %s, public %s", k.ID, EncodePublicKey(k.Public))
	}
	c := CommandFields{
		AgentID: "3f2b6c1e-8a4d-4e7b-9c2a-1d5e6f7a8b9c", ID: "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
		Type: "scan_updates", Params: []byte(`{}`), IssuedAt: 1735689600, ExpiresAt: 1735689900,
	}
	const wantMsg = "redflag-command-v1:3f2b6c1e-8a4d-4e7b-9c2a-1d5e6f7a8b9c:b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d4e:scan_updates:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a:1735689600:1735689900"
	if got := string(CommandMessage(c)); got != wantMsg {
		t.Errorf("CommandMessage = %s", got)
	}
	if got := SignCommand(k, c); got != "j3gYrMdgqEA3bOgoY6rc9NI0WAMIUR0iqR/L93GNGEnAthVsmIpmiZxaaGSMIhFmzeDmBer4rvNdM3TUQF0qDA==" {
		t.Errorf("SignCommand = %s", got)
	}
	b := BinaryFields{Version: "1.0.0", OS: "linux", Arch: "amd64", SHA256Hex: SHA256Hex(nil)}
	if got := SignBinary(k, b); got != "BPZfIaZzNPi26jWZ0h19prqTMnjE59HF2lDbrDOQTlQh115pT3wLK5iPvFQaAX3wn9ldoxjG6cyzTLJHN7LQDw==" {
		t.Errorf("SignBinary = %s", got)
	}
}
