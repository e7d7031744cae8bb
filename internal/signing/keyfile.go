package signing

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// LoadOrCreateKeyFile loads the private key stored at path, or creates a new
// random one there if the file does not exist. The file holds the 32-byte
// Ed25519 seed as padded standard base64 plus a newline.
//
// New files are written with mode 0600 atomically (temp file in the same
// directory, then linked into place), so a crash never leaves a partial key
// and two processes starting at once end up sharing one key rather than one
// silently overwriting the other. The parent directory must already exist.
//
// On Unix, a key file readable or writable by group or others is refused
// with ErrInsecureKeyFile rather than fixed, because the key may already
// have leaked and an operator should decide whether to rotate it.
func LoadOrCreateKeyFile(path string) (k *Key, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("signing: key file path is empty")
	}
	k, err = loadKeyFile(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	return createKeyFile(path)
}

func loadKeyFile(path string) (*Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("signing: checking key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: key file %s is not a regular file", ErrBadKey, path)
	}
	// Windows does not map ACLs onto Unix permission bits.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %04o but must not be accessible by group or others; "+
			"run `chmod 600 %s` and consider rotating the key if others could have read it",
			ErrInsecureKeyFile, path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing: reading key file: %w", err)
	}
	seed, err := decodeCanonical(strings.TrimSpace(string(data)))
	if err != nil || len(seed) != 32 {
		return nil, fmt.Errorf("%w: key file %s is corrupt (want padded standard base64 of a 32-byte Ed25519 seed); "+
			"restore it from backup, or move it aside to generate a new key (agents must then be given the new public key)",
			ErrBadKey, path)
	}
	return KeyFromSeed(seed)
}

func createKeyFile(path string) (*Key, bool, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, false, fmt.Errorf("signing: key file directory %s must exist (create it with mode 0700): %w", dir, err)
	} else if !fi.IsDir() {
		return nil, false, fmt.Errorf("signing: key file parent %s is not a directory", dir)
	}

	k, err := GenerateKey()
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, false, fmt.Errorf("signing: creating key file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	// After a successful link the temp name is just a second name for the
	// file, so removing it is always right.
	defer os.Remove(tmpName)

	content := base64.StdEncoding.EncodeToString(k.Private.Seed()) + "\n"
	err = tmp.Chmod(0o600) // CreateTemp already uses 0600; be explicit.
	if err == nil {
		_, err = tmp.WriteString(content)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("signing: writing key file %s: %w", tmpName, err)
	}

	// Link fails if path appeared meanwhile, unlike Rename which would
	// replace a key another process may already be using.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			k, err := loadKeyFile(path)
			return k, false, err
		}
		// Some filesystems lack hard links; fall back to an atomic rename.
		if rerr := os.Rename(tmpName, path); rerr != nil {
			return nil, false, fmt.Errorf("signing: installing key file %s: %w", path, rerr)
		}
	}
	syncDir(dir)
	return k, true, nil
}

// syncDir makes the new directory entry durable; best effort because not
// all platforms support fsync on directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
