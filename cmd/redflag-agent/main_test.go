package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSubcommands(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "badscan.json"), []byte(`{"scanners":{"enabled":["nix"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"version"}, 0, "redflag-agent ", ""},
		{[]string{"--version"}, 0, "redflag-agent ", ""},
		{[]string{"help"}, 0, "register", ""},
		{nil, 2, "", "usage"},
		{[]string{"frobnicate"}, 2, "", `"frobnicate" is not a command`},
		{[]string{"scan", "--format", "xml"}, 2, "", "use json or table"},
		{[]string{"scan", "--scanner", "apt,rpm"}, 2, "", `unknown scanner "rpm"`},
		{[]string{"scan", "--config", filepath.Join(dir, "bad.json")}, 1, "", "not valid JSON"},
		{[]string{"scan", "--config", filepath.Join(dir, "badscan.json")}, 1, "", `unknown scanner "nix"`},
		{[]string{"scan", "--config", filepath.Join(dir, "none.json"), "--format", "json", "--scanner", "snap"}, 0, `"updates": [`, ""},
		{[]string{"install-service", "--config", filepath.Join(dir, "none.json"), "--state-dir", dir}, 1, "", installServiceRefusal()},
		{[]string{"install-service", "extra"}, 2, "", "unexpected argument"},
		{[]string{"uninstall-service", "--bogus"}, 2, "", "flag provided but not defined"},
		{[]string{"register", "--server", "https://x"}, 2, "", "--server and --token are required"},
		{[]string{"register", "--bogus"}, 2, "", "flag provided but not defined"},
		{[]string{"run", "extra"}, 2, "", "unexpected argument"},
		{[]string{"run", "--log-level", "loud"}, 2, "", "--log-level"},
		{[]string{"run", "--config", filepath.Join(dir, "none.json"), "--state-dir", dir}, 1, "", "register this machine first"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.inStdout) || !strings.Contains(errb.String(), tt.inStderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d with %q / %q", tt.args, code, out.String(), errb.String(), tt.code, tt.inStdout, tt.inStderr)
		}
	}
}

// installServiceRefusal is why install-service refuses in this test: not
// root, or (as root) no registered config.
func installServiceRefusal() string {
	if os.Geteuid() != 0 {
		return "needs root"
	}
	return "register this machine first"
}
