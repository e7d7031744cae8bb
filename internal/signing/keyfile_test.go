package signing

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyFileCreatesThenLoads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.key")

	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(k1.Private.Seed()) + "\n"; string(data) != want {
		t.Errorf("file content = %q, want base64 seed %q", data, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}

	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if !k2.Public.Equal(k1.Public) || !k2.Private.Equal(k1.Private) || k2.ID != k1.ID {
		t.Error("second call returned a different key")
	}
}

func TestLoadOrCreateKeyFileAcceptsHandWrittenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	// No trailing newline, as an operator's editor or `printf` might write.
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(seed)), 0o600); err != nil {
		t.Fatal(err)
	}
	k, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if k.ID != "56475aa75463474c" {
		t.Errorf("key id = %s", k.ID)
	}
}

func TestLoadOrCreateKeyFileRefusesOpenPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permission bits only")
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signing.key")
			if _, _, err := LoadOrCreateKeyFile(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateKeyFile(path)
			if !errors.Is(err, ErrInsecureKeyFile) {
				t.Fatalf("err = %v, want ErrInsecureKeyFile", err)
			}
			if !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Errorf("error should tell the operator how to fix it: %v", err)
			}
			// Refusing must not mean repairing: the operator decides.
			if fi, _ := os.Stat(path); fi.Mode().Perm() != mode {
				t.Errorf("mode changed to %04o", fi.Mode().Perm())
			}
		})
	}
}

func TestLoadOrCreateKeyFileRefusesCorruptFile(t *testing.T) {
	tests := map[string]string{
		"empty":             "",
		"garbage":           "not a key at all\n",
		"31-byte seed":      base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n",
		"64-byte priv key":  base64.StdEncoding.EncodeToString(make([]byte, 64)) + "\n",
		"hex seed":          strings.Repeat("00", 32) + "\n",
		"two keys":          strings.Repeat(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n", 2),
		"pem":               "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
		"truncated base64":  base64.StdEncoding.EncodeToString(make([]byte, 32))[:40],
		"url-safe alphabet": base64.URLEncoding.EncodeToString(append(make([]byte, 30), 0xfb, 0xff)),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signing.key")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateKeyFile(path)
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("err = %v, want ErrBadKey", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error should name the file: %v", err)
			}
			// A corrupt key must never be silently replaced by a new one.
			if got, _ := os.ReadFile(path); string(got) != content {
				t.Error("corrupt key file was modified")
			}
		})
	}
}

func TestLoadOrCreateKeyFileBadPaths(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing parent", func(t *testing.T) {
		path := filepath.Join(dir, "nope", "signing.key")
		if _, _, err := LoadOrCreateKeyFile(path); err == nil || !strings.Contains(err.Error(), "must exist") {
			t.Fatalf("err = %v, want a missing-directory error", err)
		}
		if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
			t.Error("parent directory was created")
		}
	})
	t.Run("path is a directory", func(t *testing.T) {
		if _, _, err := LoadOrCreateKeyFile(dir); !errors.Is(err, ErrBadKey) {
			t.Fatalf("err = %v, want ErrBadKey", err)
		}
	})
	t.Run("empty path", func(t *testing.T) {
		if _, _, err := LoadOrCreateKeyFile(""); err == nil {
			t.Fatal("want error")
		}
	})
}

// Concurrent first starts must converge on one key on disk; otherwise a
// process could sign with a key that was overwritten.
func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	const n = 16
	keys := make([]*Key, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], created[i], errs[i] = LoadOrCreateKeyFile(path) })
	}
	wg.Wait()
	ncreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if created[i] {
			ncreated++
		}
	}
	onDisk, created2, err := LoadOrCreateKeyFile(path)
	if err != nil || created2 {
		t.Fatal(err)
	}
	for i := range n {
		if keys[i].ID != onDisk.ID {
			t.Errorf("goroutine %d got key %s, file holds %s", i, keys[i].ID, onDisk.ID)
		}
	}
	if ncreated != 1 {
		t.Errorf("%d calls reported created=true, want 1", ncreated)
	}
}

// Simulates losing the creation race deterministically: another process
// created the file after our existence check but before we installed ours.
func TestCreateKeyFileLosesRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.key")
	winner, _, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, created, err := createKeyFile(path)
	if err != nil || created {
		t.Fatalf("created=%v err=%v, want the existing key", created, err)
	}
	if k.ID != winner.ID {
		t.Errorf("got key %s, want the winner's %s", k.ID, winner.ID)
	}
	onDisk, _, err := LoadOrCreateKeyFile(path)
	if err != nil || onDisk.ID != winner.ID {
		t.Errorf("key file was replaced: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}
