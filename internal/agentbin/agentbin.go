// Package agentbin serves the agent binaries a server hands out (SPEC §4
// GET /api/v1/downloads/agent/{os}/{arch}, §5 binary signatures) from one
// directory laid out as
//
//	{dir}/{os}-{arch}/redflag-agent[.exe]   the binary
//	{dir}/{os}-{arch}/VERSION               optional: its version (one line)
//	{dir}/SHA256SUMS                        optional: written by make release, not read here
//
// File names are built here from a fixed list of platforms, never from
// request text, and every file is opened through an os.Root on the
// directory, so neither "..", an absolute path nor a symbolic link can
// reach a file outside it. The SHA-256 and the signature of a binary are
// computed once per (file, size, modification time, version, key) and
// cached.
package agentbin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redflaghq/redflag/internal/signing"
)

// Platform is an agent build target.
type Platform struct {
	OS, Arch string
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the targets `make release` builds and the server serves.
// linux/arm is ARMv7 (GOARM=7).
var Platforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"}, {"linux", "arm"},
	{"windows", "amd64"}, {"windows", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
}

// Supported reports whether os/arch is one of Platforms.
func Supported(goos, arch string) bool {
	for _, p := range Platforms {
		if p.OS == goos && p.Arch == arch {
			return true
		}
	}
	return false
}

// SupportedOS reports whether some platform has this OS.
func SupportedOS(goos string) bool {
	for _, p := range Platforms {
		if p.OS == goos {
			return true
		}
	}
	return false
}

// FileName is the binary's file name on a platform.
func FileName(goos string) string {
	if goos == "windows" {
		return "redflag-agent.exe"
	}
	return "redflag-agent"
}

// RelPath is the binary's path inside the directory, slash-separated.
// It panics on an unsupported platform: callers check Supported first, so
// no request text ever reaches a path.
func RelPath(goos, arch string) string {
	if !Supported(goos, arch) {
		panic("agentbin: RelPath called with unsupported platform " + goos + "/" + arch)
	}
	return goos + "-" + arch + "/" + FileName(goos)
}

// VersionFile is the name of the optional version file beside a binary.
const VersionFile = "VERSION"

// Errors of Open; match them with errors.Is.
var (
	// ErrUnsupported: the platform is not one of Platforms.
	ErrUnsupported = errors.New("agentbin: unsupported platform")
	// ErrNotFound: no binary for a supported platform (or it is not a
	// regular file, or a link leads out of the directory).
	ErrNotFound = errors.New("agentbin: no binary for this platform")
	// ErrBadVersion: the VERSION file beside the binary is unusable.
	ErrBadVersion = errors.New("agentbin: bad VERSION file")
)

// MaxBinarySize bounds a served binary (hashing reads it whole).
const MaxBinarySize = 512 << 20

// Binary is an opened agent binary with its signed identity. Close it.
type Binary struct {
	File      *os.File
	Size      int64
	ModTime   time.Time
	Platform  Platform
	Version   string
	SHA256Hex string
	Signature string // base64 Ed25519 over signing.BinaryMessage
	KeyID     string
}

// Close closes the file.
func (b *Binary) Close() error { return b.File.Close() }

// Dir serves the binaries of one directory, signed with one key.
type Dir struct {
	path           string
	key            *signing.Key
	activeKey      func() *signing.Key
	defaultVersion string

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

type cacheKey struct {
	rel     string
	size    int64
	modTime int64
	version string
	keyID   string
}

type cacheEntry struct {
	sha, sig string
}

// New serves the directory path (which need not exist yet: binaries can be
// added while the server runs). key signs the binaries; defaultVersion is
// the version of a binary without a VERSION file (the server's own: make
// build and make release build the agent with the server's version).
func New(path string, key *signing.Key, defaultVersion string) *Dir {
	return &Dir{path: path, key: key, defaultVersion: defaultVersion, cache: map[cacheKey]cacheEntry{}}
}

// UseActiveKey makes the binaries signed with whichever key active returns
// at the time (the server's active key, which rotation changes). Call it
// before serving.
func (d *Dir) UseActiveKey(active func() *signing.Key) { d.activeKey = active }

func (d *Dir) signer() *signing.Key {
	if d.activeKey != nil {
		return d.activeKey()
	}
	return d.key
}

// Path is the directory served.
func (d *Dir) Path() string { return d.path }

// Open opens the binary of goos/arch with its checksum and signature.
func (d *Dir) Open(goos, arch string) (*Binary, error) {
	if !Supported(goos, arch) {
		return nil, fmt.Errorf("%w: %q/%q", ErrUnsupported, goos, arch)
	}
	rel := RelPath(goos, arch)
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, rel, err)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, rel, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, rel)
	}
	if fi.Size() > MaxBinarySize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrNotFound, rel, MaxBinarySize)
	}
	ver, err := d.version(root, goos+"-"+arch)
	if err != nil {
		return nil, err
	}
	key := d.signer()
	b := &Binary{File: f, Size: fi.Size(), ModTime: fi.ModTime(), Platform: Platform{goos, arch}, Version: ver, KeyID: key.ID}
	k := cacheKey{rel: rel, size: fi.Size(), modTime: fi.ModTime().UnixNano(), version: ver, keyID: key.ID}
	d.mu.Lock()
	e, hit := d.cache[k]
	d.mu.Unlock()
	if !hit {
		// Hash the very file that will be served, then rewind it.
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(f, MaxBinarySize+1))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", rel, err)
		}
		if n != fi.Size() {
			return nil, fmt.Errorf("%w: %s changed while it was read; try again", ErrNotFound, rel)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("reading %s: %w", rel, err)
		}
		e.sha = hex.EncodeToString(h.Sum(nil))
		e.sig = signing.SignBinary(key, signing.BinaryFields{Version: ver, OS: goos, Arch: arch, SHA256Hex: e.sha})
		d.mu.Lock()
		// A replaced file leaves its old entries behind; drop them so the
		// cache holds at most a few entries per platform.
		for old := range d.cache {
			if old.rel == rel {
				delete(d.cache, old)
			}
		}
		d.cache[k] = e
		d.mu.Unlock()
	}
	b.SHA256Hex, b.Signature = e.sha, e.sig
	ok = true
	return b, nil
}

// version reads {platform}/VERSION, or returns the default version when
// there is none.
func (d *Dir) version(root *os.Root, platformDir string) (string, error) {
	name := platformDir + "/" + VersionFile
	f, err := root.Open(filepath.FromSlash(name))
	if errors.Is(err, fs.ErrNotExist) {
		return d.defaultVersion, nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrBadVersion, name, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrBadVersion, name, err)
	}
	v := strings.TrimSpace(string(raw))
	if !ValidVersion(v) {
		return "", fmt.Errorf("%w: %s holds %q; want one version such as 1.4.2 (letters, digits, '.', '+', '-', '_')", ErrBadVersion, name, v)
	}
	return v, nil
}

// ValidVersion reports whether v can be a binary's version: 1 to 64
// characters of [0-9A-Za-z.+_-], starting with a letter or digit. No ':'
// (the signed message is ':'-separated) and nothing a shell would expand.
func ValidVersion(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case (c == '.' || c == '+' || c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// DefaultPath is the directory served when REDFLAG_AGENT_BINARIES_DIR is
// not set (SPEC §2): {data dir}/agents when it exists, else the agents
// directory beside the server's own executable when that exists (make build
// puts bin/redflag-server and bin/agents/{os}-{arch}/ side by side, so
// `make run` serves the agent it just built), else {data dir}/agents.
func DefaultPath(dataDir string) string {
	inData := filepath.Join(dataDir, "agents")
	if isDir(inData) {
		return inData
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		if beside := filepath.Join(filepath.Dir(exe), "agents"); isDir(beside) {
			return beside
		}
	}
	return inData
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
