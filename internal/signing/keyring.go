package signing

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Keyring holds the server's private keys by id and which of them is
// active (signs new commands and binaries). It is safe for concurrent use.
type Keyring struct {
	mu     sync.RWMutex
	keys   map[string]*Key
	active *Key
}

// NewKeyring returns a keyring holding active, which is active.
func NewKeyring(active *Key) *Keyring {
	return &Keyring{keys: map[string]*Key{active.ID: active}, active: active}
}

// Active returns the key new signatures use.
func (r *Keyring) Active() *Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.active
}

// Get returns the key with this id, or nil.
func (r *Keyring) Get(id string) *Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[id]
}

// Add stores k; activate makes it the active key.
func (r *Keyring) Add(k *Key, activate bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[k.ID] = k
	if activate {
		r.active = k
	}
}

// RotatedKeyFile is the file name of a key created by rotation, in the
// same directory as the first key (signing.key).
func RotatedKeyFile(dir, keyID string) string {
	return filepath.Join(dir, "signing-"+keyID+".key")
}

// LoadKeyFile loads an existing key file (same format and permission rules
// as LoadOrCreateKeyFile); fs.ErrNotExist when there is none.
func LoadKeyFile(path string) (*Key, error) { return loadKeyFile(path) }

// WriteKeyFile stores k's seed at path with mode 0600; the file must not
// exist yet. It is written to a temporary name and linked into place, so
// a crash never leaves a partial key.
func WriteKeyFile(path string, k *Key) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("signing: creating key file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(k.Private.Seed()) + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("signing: writing key file %s: %w", tmpName, err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("signing: key file %s already exists: %w", path, err)
		}
		if rerr := os.Rename(tmpName, path); rerr != nil {
			return fmt.Errorf("signing: installing key file %s: %w", path, rerr)
		}
	}
	syncDir(dir)
	return nil
}
