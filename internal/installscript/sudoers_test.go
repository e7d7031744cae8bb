package installscript

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/scanner"
)

// sudoersDropIn is the drop-in the rendered Linux script writes.
func sudoersDropIn(t *testing.T) string {
	t.Helper()
	s := render(t, "linux", Params{ServerURL: "https://rf.example.com", Token: "rfr_x", Keys: []Key{testKey(t)}})
	const start = "cat >\"$TMP/sudoers\" <<'EOF'\n"
	i := strings.Index(s, start)
	if i < 0 {
		t.Fatal("the Linux script writes no sudoers drop-in")
	}
	body, _, ok := strings.Cut(s[i+len(start):], "\nEOF\n")
	if !ok {
		t.Fatal("the sudoers here-document does not end")
	}
	return body + "\n"
}

// TestSudoersMatchesSudoPrograms: the drop-in allows exactly the programs
// the agent runs through sudo (scanner.SudoPrograms), at the same paths,
// shutdown only with -r, and nothing to anyone but redflag.
func TestSudoersMatchesSudoPrograms(t *testing.T) {
	d := sudoersDropIn(t)
	var allowed []string
	aliases := map[string]bool{}
	for _, line := range strings.Split(d, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "Defaults:redflag "):
		case strings.HasPrefix(line, "Cmnd_Alias "):
			name, list, ok := strings.Cut(strings.TrimPrefix(line, "Cmnd_Alias "), " = ")
			if !ok {
				t.Fatalf("unreadable alias line %q", line)
			}
			aliases[name] = true
			for _, c := range strings.Split(list, ", ") {
				path, args, _ := strings.Cut(c, " ")
				if filepath.Base(path) == "shutdown" {
					if args != "-r *" {
						t.Errorf("%s is allowed with %q, want only -r", path, args)
					}
				} else if args != "" {
					t.Errorf("unexpected arguments in %q", c)
				}
				allowed = append(allowed, path)
			}
		case strings.HasPrefix(line, "redflag ALL=(root) NOPASSWD: "):
			for _, a := range strings.Split(strings.TrimPrefix(line, "redflag ALL=(root) NOPASSWD: "), ", ") {
				if !aliases[a] {
					t.Errorf("the rule grants %q, which is not one of the aliases", a)
				}
			}
		default:
			t.Errorf("unexpected sudoers line %q", line)
		}
	}
	var want []string
	for _, paths := range scanner.SudoPrograms {
		want = append(want, paths...)
	}
	slices.Sort(want)
	slices.Sort(allowed)
	if !slices.Equal(allowed, want) {
		t.Errorf("the sudoers drop-in allows\n  %q\nscanner.SudoPrograms runs\n  %q", allowed, want)
	}
	// Every variable Exec sets must survive sudo's env_reset.
	for _, v := range []string{"LC_ALL", "LANG", "LANGUAGE", "DEBIAN_FRONTEND", "NO_COLOR"} {
		if !strings.Contains(d, v) {
			t.Errorf("env_keep lacks %s", v)
		}
	}
	if visudo, err := exec.LookPath("visudo"); err == nil {
		f := filepath.Join(t.TempDir(), "redflag-agent")
		if err := os.WriteFile(f, []byte(d), 0o440); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(visudo, "-cf", f).CombinedOutput(); err != nil {
			t.Errorf("visudo -cf: %v\n%s", err, out)
		}
	} else {
		t.Log("visudo is not installed: the drop-in's syntax is checked by the fake-root test's shim only")
	}
}
