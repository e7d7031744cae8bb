//go:build !windows

package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReplaceBinaryThroughLink: the Linux layout, /usr/local/bin/redflag-agent
// a relative link to /usr/local/lib/redflag/redflag-agent. The upgrade
// replaces the real file inside its own directory; the link and its
// directory (root's, not writable by the agent's account) stay untouched.
func TestReplaceBinaryThroughLink(t *testing.T) {
	root := t.TempDir()
	bin, lib := filepath.Join(root, "bin"), filepath.Join(root, "lib", "redflag")
	for _, d := range []string{bin, lib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	real := filepath.Join(lib, "redflag-agent")
	if err := os.WriteFile(real, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(bin, "redflag-agent")
	if err := os.Symlink("../lib/redflag/redflag-agent", link); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(bin, 0o755) })
	src := filepath.Join(t.TempDir(), "new")
	if err := os.WriteFile(src, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}

	// What executablePath does with os.Executable()'s answer.
	exe := realPath(link)
	wantReal, _ := filepath.EvalSymlinks(real)
	if exe != wantReal {
		t.Fatalf("realPath(link) = %s, want the link's target %s", exe, wantReal)
	}
	if err := replaceBinary(src, exe); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	if got, _ := os.ReadFile(link); string(got) != "new" {
		t.Errorf("the link reaches %q, want the new binary", got)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o755 {
		t.Errorf("the new binary has mode %04o", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(lib); len(ents) != 1 {
		t.Errorf("%s holds %d entries after the replace, want 1", lib, len(ents))
	}
	if ents, _ := os.ReadDir(bin); len(ents) != 1 {
		t.Errorf("%s holds %d entries after the replace, want 1", bin, len(ents))
	}
}
