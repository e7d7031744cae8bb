package installscript

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/signing"
)

func testKey(t testing.TB) Key {
	t.Helper()
	k, err := signing.KeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: k.ID, PublicKey: signing.EncodePublicKey(k.Public)}
}

func render(t *testing.T, platform string, p Params) string {
	t.Helper()
	b, err := Render(platform, p)
	if err != nil {
		t.Fatalf("Render(%s): %v", platform, err)
	}
	return string(b)
}

// TestValuesOnlyQuoted: the server URL and the token appear in a script
// only as whole single-quoted literals.
func TestValuesOnlyQuoted(t *testing.T) {
	const url = "https://redflag.example.com:8443/sub/path"
	const token = "rfr_AbC-dEf_123.x~y"
	for _, platform := range []string{"linux", "darwin", "windows"} {
		s := render(t, platform, Params{ServerURL: url, Token: token, Keys: []Key{testKey(t)}})
		for _, v := range []string{url, token} {
			all, quoted := strings.Count(s, v), strings.Count(s, "'"+v+"'")
			if all == 0 || all != quoted {
				t.Errorf("%s: %q appears %d times, %d of them as a quoted literal", platform, v, all, quoted)
			}
		}
		if strings.Contains(s, "{{") || strings.Contains(s, "<no value>") {
			t.Errorf("%s: template left unrendered parts", platform)
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	ok := Params{ServerURL: "https://rf.example.com", Keys: []Key{testKey(t)}}
	for _, tc := range []struct {
		name, platform, field string
		mod                   func(p *Params)
	}{
		{"unknown platform", "freebsd", "platform", func(*Params) {}},
		{"quote in token", "linux", "token", func(p *Params) { p.Token = "abc'def" }},
		{"command substitution", "linux", "token", func(p *Params) { p.Token = "$(reboot)" }},
		{"backtick", "darwin", "token", func(p *Params) { p.Token = "`id`" }},
		{"space", "windows", "token", func(p *Params) { p.Token = "a b" }},
		{"newline", "linux", "token", func(p *Params) { p.Token = "a\nb" }},
		{"powershell subexpression", "windows", "token", func(p *Params) { p.Token = "$(Stop-Computer)" }},
		{"typographic quote", "windows", "token", func(p *Params) { p.Token = "a\u2019b" }},
		{"long token", "linux", "token", func(p *Params) { p.Token = strings.Repeat("a", MaxTokenLen+1) }},
		{"386", "linux", "arch", func(p *Params) { p.Arch = "386" }},
		{"windows arm", "windows", "arch", func(p *Params) { p.Arch = "arm" }},
		{"darwin arm", "darwin", "arch", func(p *Params) { p.Arch = "arm" }},
		{"arch injection", "linux", "arch", func(p *Params) { p.Arch = "amd64;id" }},
		{"action", "linux", "action", func(p *Params) { p.Action = "purge" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.mod(&p)
			_, err := Render(tc.platform, p)
			var pe *Error
			if !errors.As(err, &pe) || pe.Field != tc.field {
				t.Fatalf("Render = %v, want an *Error on %q", err, tc.field)
			}
		})
	}
	// Programming errors (not the caller's input) are plain errors.
	if _, err := Render("linux", Params{ServerURL: "https://rf.example.com/"}); err == nil {
		t.Errorf("an unnormalised server URL was accepted")
	}
	if _, err := Render("linux", Params{ServerURL: "https://rf.example.com", Keys: []Key{{ID: "0000000000000000", PublicKey: testKey(t).PublicKey}}}); err == nil {
		t.Errorf("a key under the wrong id was accepted")
	}
}

func TestNormalizeServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://rf.example.com":           "https://rf.example.com",
		"https://rf.example.com/":          "https://rf.example.com",
		"http://10.0.0.5:8080":             "http://10.0.0.5:8080",
		"http://[::1]:8080/":               "http://[::1]:8080",
		"https://proxy.example.com/fleet/": "https://proxy.example.com/fleet",
	} {
		got, err := NormalizeServerURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeServerURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ftp://rf.example.com", "rf.example.com", "https://", "https://user:pw@rf.example.com",
		"https://rf.example.com/?x=1", "https://rf.example.com/#frag", "https://rf.example.com'", "https://rf.example.com/$(id)",
		"https://rf.example.com/a b", "https://rf.example.com:80x", "https://rf.example.com\n", "https://rf.example.com/`id`",
		"https://rf.example.com;reboot", "https://rf.example.com/\"", "https://" + strings.Repeat("a", 2100)} {
		if got, err := NormalizeServerURL(in); err == nil {
			t.Errorf("NormalizeServerURL(%q) = %q, want an error", in, got)
		}
	}
}

// TestShQuoteRoundTrip: sh reads back exactly what shQuote wrote, even for
// text validation would refuse.
func TestShQuoteRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, s := range []string{"", "plain", "it's", "'", "''", `a\'b`, "$(id)", "`id`", "a\nb", "*", "$HOME", `"q"`, "日本"} {
		out, err := exec.Command(sh, "-c", "printf '%s' "+shQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh read %q back as %q (%v)", s, out, err)
		}
	}
}

func TestPSQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":          "''",
		"plain":     "'plain'",
		"it's":      "'it''s'",
		"a\u2019b":  "'a\u2019\u2019b'",
		"$(x) `n` ": "'$(x) `n` '",
	} {
		if got := psQuote(in); got != want {
			t.Errorf("psQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSPKIPrefix: the scripts build the PEM public key as a fixed 16-char
// base64 header plus the key's own base64, which must equal the DER
// SubjectPublicKeyInfo the standard library produces.
func TestSPKIPrefix(t *testing.T) {
	k := testKey(t)
	raw, _ := base64.StdEncoding.DecodeString(k.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := "MCowBQYDK2VwAyEA" + k.PublicKey; got != base64.StdEncoding.EncodeToString(der) {
		t.Fatalf("SPKI = %s, want %s", got, base64.StdEncoding.EncodeToString(der))
	}
	for _, platform := range []string{"linux", "darwin"} {
		if !strings.Contains(render(t, platform, Params{ServerURL: "https://x.example", Keys: []Key{k}}), "MCowBQYDK2VwAyEA%s") {
			t.Errorf("%s script does not build the key with the checked prefix", platform)
		}
	}
}

// TestShellcheck lints the rendered shell scripts. In CI shellcheck must be
// installed (make test installs it there); elsewhere the test is skipped
// with the reason.
func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("shellcheck is not installed; CI must run it (apt-get install shellcheck)")
		}
		t.Skip("shellcheck is not installed: the install scripts are not linted (apt-get install shellcheck)")
	}
	dir := t.TempDir()
	var files []string
	for _, platform := range []string{"linux", "darwin"} {
		for i, p := range []Params{
			{ServerURL: "https://rf.example.com", Token: "rfr_x", Keys: []Key{testKey(t)}},
			{ServerURL: "http://127.0.0.1:8080", Arch: "arm64", Action: ActionUninstall},
		} {
			f := filepath.Join(dir, platform+strconv.Itoa(i)+".sh")
			if err := os.WriteFile(f, []byte(render(t, platform, p)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("sh", "-n", f).CombinedOutput(); err != nil {
				t.Errorf("sh -n %s script: %v\n%s", platform, err, out)
			}
			files = append(files, f)
		}
	}
	if out, err := exec.Command(sc, append([]string{"--shell=sh", "--severity=style"}, files...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// FuzzRenderParams: whatever a request sends, Render either refuses it or
// writes each value only as a whole quoted literal without quote
// characters inside.
func FuzzRenderParams(f *testing.F) {
	f.Add("linux", "https://rf.example.com", "rfr_abc", "", "")
	f.Add("windows", "http://[::1]:8080/x", "a'b", "arm64", "uninstall")
	f.Add("darwin", "https://h/$(id)", "`x`", "arm", "install")
	key := testKey(f)
	f.Fuzz(func(t *testing.T, platform, rawURL, token, arch, action string) {
		url, err := NormalizeServerURL(rawURL)
		if err != nil {
			return
		}
		if again, err := NormalizeServerURL(url); err != nil || again != url {
			t.Fatalf("NormalizeServerURL is not idempotent: %q → %q → %q, %v", rawURL, url, again, err)
		}
		out, err := Render(platform, Params{ServerURL: url, Token: token, Arch: arch, Action: action, Keys: []Key{key}})
		if err != nil {
			return
		}
		s := string(out)
		for _, v := range []string{url, token, arch} {
			if strings.ContainsAny(v, "'\"`$\\\n\r;&|<>(){} \u2018\u2019\u201a\u201b") {
				t.Fatalf("Render accepted %q, which holds a quoting or shell character", v)
			}
			if v != "" && !strings.Contains(s, "'"+v+"'") {
				t.Fatalf("%q is not written as a quoted literal", v)
			}
		}
	})
}

// TestPowerShellBalanced is the check this machine can make of the
// PowerShell script (no pwsh here): outside strings and comments, every
// bracket closes, and the values are verbatim strings.
func TestPowerShellBalanced(t *testing.T) {
	s := render(t, "windows", Params{ServerURL: "https://rf.example.com", Token: "rfr_x", Action: ActionUninstall})
	var stack []rune
	pairs := map[rune]rune{')': '(', '}': '{', ']': '['}
	line := 1
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case c == '\n':
			line++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			line++
		case c == '\'':
			for i++; i < len(s); i++ {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '`' {
					i++
				}
			}
		case c == '(' || c == '{' || c == '[':
			stack = append(stack, c)
		case pairs[c] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				t.Fatalf("line %d: unbalanced %q", line, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed %q at the end", string(stack))
	}
	for _, want := range []string{"$Server = 'https://rf.example.com'\n", "$Token = 'rfr_x'\n", "$Action = 'uninstall'\n", "$ServiceName = 'RedFlagAgent'"} {
		if !strings.Contains(s, want) {
			t.Errorf("the PowerShell script lacks %q", want)
		}
	}
}
