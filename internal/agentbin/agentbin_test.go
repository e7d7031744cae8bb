package agentbin

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/signing"
)

func testKey(t *testing.T) *signing.Key {
	t.Helper()
	k, err := signing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func put(t *testing.T, dir, rel, content string) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readAll(t *testing.T, b *Binary) string {
	t.Helper()
	data, err := io.ReadAll(b.File)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestOpenSignsAndCaches(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	path := put(t, dir, "linux-amd64/redflag-agent", "binary one")
	d := New(dir, key, "1.0.0")

	b, err := d.Open("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b); got != "binary one" {
		t.Fatalf("read %q after hashing: the file was not rewound", got)
	}
	b.Close()
	want := signing.BinaryFields{Version: "1.0.0", OS: "linux", Arch: "amd64", SHA256Hex: signing.SHA256Hex([]byte("binary one"))}
	if b.SHA256Hex != want.SHA256Hex || b.Version != "1.0.0" || b.KeyID != key.ID || b.Size != int64(len("binary one")) {
		t.Fatalf("binary = %+v", b)
	}
	if err := signing.VerifyBinary(key.Public, want, b.Signature); err != nil {
		t.Fatalf("signature: %v", err)
	}

	// Cached: the same answer without reading the file again.
	b2, err := d.Open("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	b2.Close()
	if b2.Signature != b.Signature || len(d.cache) != 1 {
		t.Fatalf("second open: %+v, cache %d entries", b2, len(d.cache))
	}

	// A new file and a VERSION file make a new signature, and the old
	// entry goes.
	put(t, dir, "linux-amd64/redflag-agent", "binary two, longer")
	put(t, dir, "linux-amd64/VERSION", " 1.1.0-rc.1+g123\n")
	later := time.Now().Add(time.Hour)
	_ = os.Chtimes(path, later, later)
	b3, err := d.Open("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer b3.Close()
	want = signing.BinaryFields{Version: "1.1.0-rc.1+g123", OS: "linux", Arch: "amd64", SHA256Hex: signing.SHA256Hex([]byte("binary two, longer"))}
	if b3.Version != want.Version || b3.SHA256Hex != want.SHA256Hex {
		t.Fatalf("after replacing: %+v", b3)
	}
	if err := signing.VerifyBinary(key.Public, want, b3.Signature); err != nil {
		t.Fatalf("signature after replacing: %v", err)
	}
	if len(d.cache) != 1 {
		t.Errorf("cache holds %d entries for one platform", len(d.cache))
	}

	// Windows binaries carry .exe.
	put(t, dir, "windows-amd64/redflag-agent.exe", "MZ")
	b4, err := d.Open("windows", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	b4.Close()
}

func TestOpenRefuses(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "agents")
	secret := put(t, parent, "secret", "secret")
	put(t, dir, "linux-amd64/redflag-agent", "ok")
	// Links that leave the directory, absolute and relative.
	if err := os.MkdirAll(filepath.Join(dir, "linux-arm64"), 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink(secret, filepath.Join(dir, "linux-arm64", "redflag-agent")))
	must(t, os.MkdirAll(filepath.Join(dir, "linux-arm"), 0o755))
	must(t, os.Symlink("../../secret", filepath.Join(dir, "linux-arm", "redflag-agent")))
	must(t, os.Symlink(parent, filepath.Join(dir, "darwin-arm64")))
	// A directory where the binary should be.
	must(t, os.MkdirAll(filepath.Join(dir, "darwin-amd64", "redflag-agent"), 0o755))
	// A link inside the directory is fine.
	must(t, os.MkdirAll(filepath.Join(dir, "windows-amd64"), 0o755))
	must(t, os.Symlink("../linux-amd64/redflag-agent", filepath.Join(dir, "windows-amd64", "redflag-agent.exe")))
	// A VERSION file that would break the signed message, and one linking out.
	put(t, dir, "windows-arm64/redflag-agent.exe", "x")
	put(t, dir, "windows-arm64/VERSION", "1.0:linux:amd64")

	d := New(dir, testKey(t), "1.0.0")
	for _, tc := range []struct {
		os, arch string
		want     error
	}{
		{"linux", "arm64", ErrNotFound},
		{"linux", "arm", ErrNotFound},
		{"darwin", "arm64", ErrNotFound},
		{"darwin", "amd64", ErrNotFound},
		{"windows", "arm64", ErrBadVersion},
		{"linux", "386", ErrUnsupported},
		{"../..", "secret", ErrUnsupported},
		{"linux", "amd64/../../secret", ErrUnsupported},
		{"", "", ErrUnsupported},
	} {
		b, err := d.Open(tc.os, tc.arch)
		if !errors.Is(err, tc.want) {
			if b != nil {
				b.Close()
			}
			t.Errorf("Open(%q, %q) = %v, want %v", tc.os, tc.arch, err, tc.want)
		}
	}
	b, err := d.Open("windows", "amd64")
	if err != nil {
		t.Fatalf("a link inside the directory: %v", err)
	}
	b.Close()

	must(t, os.Remove(filepath.Join(dir, "windows-arm64", "VERSION")))
	must(t, os.Symlink(secret, filepath.Join(dir, "windows-arm64", "VERSION")))
	if _, err := d.Open("windows", "arm64"); !errors.Is(err, ErrBadVersion) {
		t.Errorf("a VERSION link out of the directory: %v", err)
	}

	missing := New(filepath.Join(parent, "nope"), testKey(t), "1.0.0")
	if _, err := missing.Open("linux", "amd64"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing directory: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestValidVersion(t *testing.T) {
	for _, v := range []string{"1", "1.2.3", "0.1.0+g1a2b3c4d5e6f", "1.4.2-rc.1", "dev", "v2_0"} {
		if !ValidVersion(v) {
			t.Errorf("ValidVersion(%q) = false", v)
		}
	}
	for _, v := range []string{"", "-1", ".1", "1:2", "1 2", "1\n", "$(id)", "1/2", string(make([]byte, 65))} {
		if ValidVersion(v) {
			t.Errorf("ValidVersion(%q) = true", v)
		}
	}
}

func TestPlatforms(t *testing.T) {
	if len(Platforms) != 7 {
		t.Fatalf("%d platforms", len(Platforms))
	}
	for _, p := range Platforms {
		if !Supported(p.OS, p.Arch) || !SupportedOS(p.OS) {
			t.Errorf("%s not supported", p)
		}
	}
	if RelPath("windows", "arm64") != "windows-arm64/redflag-agent.exe" || RelPath("linux", "arm") != "linux-arm/redflag-agent" {
		t.Errorf("RelPath: %s, %s", RelPath("windows", "arm64"), RelPath("linux", "arm"))
	}
	defer func() {
		if recover() == nil {
			t.Errorf("RelPath accepted an unsupported platform")
		}
	}()
	RelPath("..", "..")
}

func TestDefaultPath(t *testing.T) {
	data := t.TempDir()
	want := filepath.Join(data, "agents")
	// Neither {data}/agents nor agents beside the test binary exists.
	if got := DefaultPath(data); got != want {
		t.Errorf("DefaultPath = %s, want %s", got, want)
	}
	must(t, os.MkdirAll(want, 0o700))
	if got := DefaultPath(data); got != want {
		t.Errorf("DefaultPath with the directory = %s, want %s", got, want)
	}
}
