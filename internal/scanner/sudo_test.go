//go:build linux

package scanner

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sudoShims puts a fake sudo (it records its arguments, one per line, and
// exits 0 without running anything, or refuses like sudo -n when
// RF_SUDO_REFUSE=1) and plain recording programs on PATH. It returns the
// Env to give Exec and the log file.
func sudoShims(t *testing.T, programs ...string) ([]string, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "calls")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("sudo", `echo "sudo" >>"$RF_LOG"; for a in "$@"; do printf '%s\n' "$a" >>"$RF_LOG"; done
if [ "${RF_SUDO_REFUSE:-}" = 1 ]; then echo "sudo: a password is required" >&2; exit 1; fi
echo "as root"
`)
	for _, p := range programs {
		write(p, `echo "$(basename "$0")" >>"$RF_LOG"; for a in "$@"; do printf '%s\n' "$a" >>"$RF_LOG"; done; echo direct; exit "${RF_EXIT:-0}"`+"\n")
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return []string{"RF_LOG=" + log}, log
}

func readCalls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func nonRoot() int { return 1000 }

func TestExecSudoPrefixesPrivilegedPrograms(t *testing.T) {
	env, log := sudoShims(t, "apt-get", "dpkg-query", "flatpak")
	ctx := context.Background()
	r := Exec{Env: env, Sudo: true, Geteuid: nonRoot}

	res, err := r.Run(ctx, "apt-get", "install", "-y", "--", "$(id)")
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "as root\n" {
		t.Fatalf("apt-get did not go through sudo: %q", res.Stdout)
	}
	got := readCalls(t, log)
	if len(got) != 8 || got[0] != "sudo" || got[1] != "-n" || got[2] != "--" || !filepath.IsAbs(got[3]) ||
		filepath.Base(got[3]) != "apt-get" || !slices.Equal(got[4:], []string{"install", "-y", "--", "$(id)"}) {
		t.Fatalf("sudo argv = %q, want sudo -n -- /…/apt-get install -y -- $(id)", got)
	}
	if want := SudoPrograms["apt-get"][0]; fileIsExecutable(want) && got[3] != want {
		t.Errorf("sudo ran %s, want the sudoers path %s", got[3], want)
	}

	// Read-only helpers run as the agent's own user.
	os.Remove(log)
	if _, err := r.Run(ctx, "dpkg-query", "-W"); err != nil {
		t.Fatal(err)
	}
	if got := readCalls(t, log); !slices.Equal(got, []string{"dpkg-query", "-W"}) {
		t.Errorf("dpkg-query: calls %q, want it run directly", got)
	}
	// flatpak --user is the agent user's own installation.
	os.Remove(log)
	if _, err := r.Run(ctx, "flatpak", "update", "--user", "-y"); err != nil {
		t.Fatal(err)
	}
	if got := readCalls(t, log); got[0] != "flatpak" {
		t.Errorf("flatpak --user: calls %q, want it run directly", got)
	}
	// As root, or without Sudo, nothing goes through sudo.
	for _, e := range []Exec{{Env: env, Sudo: true, Geteuid: func() int { return 0 }}, {Env: env, Geteuid: nonRoot}} {
		os.Remove(log)
		if _, err := e.Run(ctx, "apt-get", "update"); err != nil {
			t.Fatal(err)
		}
		if got := readCalls(t, log); !slices.Equal(got, []string{"apt-get", "update"}) {
			t.Errorf("Sudo=%v: calls %q, want apt-get run directly", e.Sudo, got)
		}
	}
}

func TestExecSudoRefused(t *testing.T) {
	env, _ := sudoShims(t, "apt-get", "pacman")
	r := Exec{Env: append(env, "RF_SUDO_REFUSE=1"), Sudo: true, Geteuid: nonRoot}
	_, err := r.Run(context.Background(), "apt-get", "update")
	want := "sudo refused apt-get: the sudoers drop-in /etc/sudoers.d/redflag-agent is missing or does not allow it (sudo: a password is required)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	// A tool's own exit 1 is an answer, not a refusal.
	env, _ = sudoShims(t, "pacman")
	res, err := Exec{Env: append(env, "RF_EXIT=1"), Geteuid: nonRoot}.Run(context.Background(), "pacman", "-Qu")
	if err != nil || res.ExitCode != 1 {
		t.Fatalf("pacman exit 1: %v %+v", err, res)
	}
	if sudoRefusal("pacman", Result{ExitCode: 1, Stderr: []byte("error: no targets specified\n")}) != nil {
		t.Error("a tool's error was taken for a sudo refusal")
	}
	if sudoRefusal("pacman", Result{ExitCode: 1, Stderr: []byte("Sorry, user redflag is not allowed to execute '/usr/bin/pacman -Syu' as root on h.\n")}) == nil {
		t.Error("sudo's 'not allowed' was not recognised")
	}
}

// unprivilegedPrograms are the programs the scanners and installers run as
// the agent's own user: read-only queries, and tools that refuse root.
var unprivilegedPrograms = []string{
	"apt",          // apt list --upgradable
	"dpkg-query",   // installed versions
	"rpm",          // rpm -qa
	"checkupdates", // syncs a private copy of the pacman databases
	"paru", "yay",  // AUR helpers refuse root (they call sudo pacman themselves)
	"brew",   // Homebrew refuses root
	"winget", // Windows
	"docker", // the Docker socket, through the docker group
}

// TestSudoProgramsMatchWhatRuns reads the scanner sources: every program a
// scanner or installer names is either in SudoPrograms or known to need no
// root, and every SudoPrograms entry (but the agent's shutdown) is run by
// something. A new package manager call cannot go unclassified.
func TestSudoProgramsMatchWhatRuns(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]string{} // program → where
	lit := func(e ast.Expr) (string, bool) {
		b, ok := e.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(b.Value)
		return filepath.Base(s), err == nil
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "sudo.go" {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				name := ""
				switch fn := n.Fun.(type) {
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				case *ast.Ident:
					name = fn.Name
				}
				var args []ast.Expr
				switch name {
				case "Run":
					if len(n.Args) > 1 {
						args = n.Args[1:2]
					}
				case "mgrRun":
					if len(n.Args) > 3 {
						args = n.Args[3:4]
					}
				case "LookPath":
					args = n.Args
				case "mgrFirstPath":
					if len(n.Args) > 1 {
						args = n.Args[1:]
					}
				}
				for _, a := range args {
					if s, ok := lit(a); ok {
						named[s] = fset.Position(a.Pos()).String()
					}
				}
			case *ast.AssignStmt: // bin, args := "needs-restarting", …
				for i, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok && id.Name == "bin" && i < len(n.Rhs) {
						if s, ok := lit(n.Rhs[i]); ok {
							named[s] = fset.Position(n.Pos()).String()
						}
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "bin" {
					if s, ok := lit(n.Value); ok {
						named[s] = fset.Position(n.Pos()).String()
					}
				}
			}
			return true
		})
	}
	if len(named) < 10 {
		t.Fatalf("found only %v: the source walk is broken", named)
	}
	for p, where := range named {
		_, root := SudoPrograms[p]
		if !root && !slices.Contains(unprivilegedPrograms, p) {
			t.Errorf("%s (%s) is neither in SudoPrograms nor known to run unprivileged", p, where)
		}
	}
	for p, paths := range SudoPrograms {
		if _, ok := named[p]; !ok && p != "shutdown" {
			t.Errorf("SudoPrograms lists %s, which nothing runs: drop it here and from the sudoers drop-in", p)
		}
		for _, path := range paths {
			if !filepath.IsAbs(path) || filepath.Base(path) != p {
				t.Errorf("SudoPrograms[%s] has path %s", p, path)
			}
		}
	}
}
