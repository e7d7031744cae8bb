// Package installscript renders the agent install scripts served at
// GET /install/{platform} (SPEC §4): a POSIX shell script for Linux and
// macOS, a PowerShell script for Windows.
//
// The scripts are embedded text/template files. Every value that comes
// from a request or the server (server URL, registration token,
// architecture, action, public keys) is validated here first and then
// handed to the template only as a finished single-quoted literal of the
// script's language (shQuote, psQuote): a template cannot insert a raw
// value, because the data it receives holds none.
package installscript

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"

	"github.com/redflaghq/redflag/internal/agentbin"
	"github.com/redflaghq/redflag/internal/signing"
)

//go:embed scripts/*.tmpl
var scriptFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(scriptFS, "scripts/*.tmpl"))

// Platforms served, with their template and content type.
var platforms = map[string]struct{ tmpl, contentType, fileName string }{
	"linux":   {"linux.sh.tmpl", "text/x-shellscript; charset=utf-8", "install-redflag-agent.sh"},
	"darwin":  {"darwin.sh.tmpl", "text/x-shellscript; charset=utf-8", "install-redflag-agent.sh"},
	"windows": {"windows.ps1.tmpl", "text/plain; charset=utf-8", "install-redflag-agent.ps1"},
}

// Supported reports whether platform has an install script.
func Supported(platform string) bool { _, ok := platforms[platform]; return ok }

// ContentType is the Content-Type of platform's script.
func ContentType(platform string) string { return platforms[platform].contentType }

// FileName is a file name for platform's script (Content-Disposition).
func FileName(platform string) string { return platforms[platform].fileName }

// Actions a script performs by default.
const (
	ActionInstall   = "install"
	ActionUninstall = "uninstall"
)

// Key is a public key the scripts may check binary signatures with.
type Key struct {
	ID        string // signing.KeyID of the key
	PublicKey string // padded standard base64 of the 32-byte Ed25519 key
}

// Params are a script's inputs. ServerURL must come from
// NormalizeServerURL; the others are checked by Render.
type Params struct {
	ServerURL string
	// Token is the registration token; empty renders a script that can
	// upgrade or uninstall an agent but not register a new one.
	Token string
	// Arch forces the architecture (the platform's GOARCH name); empty lets
	// the script detect it.
	Arch string
	// Action is ActionInstall (the default when empty) or ActionUninstall.
	Action string
	// Keys are the server's public keys (the shell scripts verify the
	// binary's signature with them when OpenSSL 3 is available).
	Keys []Key
}

// Error is a parameter the caller sent that cannot be used; its text is a
// sentence for the person who sent it.
type Error struct{ Field, Msg string }

func (e *Error) Error() string { return e.Msg }

// MaxTokenLen bounds a registration token.
const MaxTokenLen = 256

// ValidToken reports whether s can be a registration token: 1 to
// MaxTokenLen characters of the URL-safe base64 alphabet (what the server
// issues: rfr_ + base64url) plus '.' and '~'. Nothing a shell or
// PowerShell would interpret.
func ValidToken(s string) bool {
	if s == "" || len(s) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar(s[i]) {
			return false
		}
	}
	return true
}

func tokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == '~'
}

// NormalizeServerURL checks raw is an http(s) URL a script can reach the
// server at, and returns it without a trailing slash. It refuses user
// info, query, fragment and any character outside letters, digits and
// "-._~:/[]%" (so the URL needs no escaping anywhere it is used).
func NormalizeServerURL(raw string) (string, error) {
	if raw == "" || len(raw) > 2048 {
		return "", errors.New("the server URL is empty or too long")
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !(tokenChar(c) || c == ':' || c == '/' || c == '[' || c == ']' || c == '%') {
			return "", fmt.Errorf("the server URL contains %q, which an install script cannot carry", c)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("the server URL does not parse: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("the server URL must start with http:// or https://")
	}
	if u.Host == "" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("the server URL must be scheme://host[:port][/path] with no user, query or fragment")
	}
	if p := u.Port(); p != "" {
		for _, c := range p {
			if c < '0' || c > '9' {
				return "", errors.New("the server URL has a bad port")
			}
		}
	}
	return strings.TrimRight(raw, "/"), nil
}

// scriptData is all a template sees: finished literals only.
type scriptData struct {
	ServerURL, Token, Arch, Action, Keys string
}

// Render returns platform's script for p.
func Render(platform string, p Params) ([]byte, error) {
	pl, ok := platforms[platform]
	if !ok {
		return nil, &Error{"platform", fmt.Sprintf("there is no install script for %q; use linux, windows or darwin", clip(platform))}
	}
	server, err := NormalizeServerURL(p.ServerURL)
	if err != nil || server != p.ServerURL {
		return nil, fmt.Errorf("installscript: server URL %q not normalised: %v", p.ServerURL, err)
	}
	if p.Token != "" && !ValidToken(p.Token) {
		return nil, &Error{"token", "the registration token has characters no token has (letters, digits, '-', '_', '.', '~' only) or is too long"}
	}
	if p.Arch != "" && !agentbin.Supported(platform, p.Arch) {
		return nil, &Error{"arch", fmt.Sprintf("%s agents are built for %s; %q is none of them", platform, archList(platform), clip(p.Arch))}
	}
	switch p.Action {
	case "":
		p.Action = ActionInstall
	case ActionInstall, ActionUninstall:
	default:
		return nil, &Error{"action", "action must be install or uninstall"}
	}
	keys := make([]string, 0, len(p.Keys))
	for _, k := range p.Keys {
		pub, err := signing.ParsePublicKey(k.PublicKey)
		if err != nil || signing.KeyID(pub) != k.ID {
			return nil, fmt.Errorf("installscript: public key %q is not a valid key with that id: %v", k.ID, err)
		}
		keys = append(keys, k.ID+":"+k.PublicKey)
	}
	quote := shQuote
	if platform == "windows" {
		quote = psQuote
	}
	d := scriptData{ServerURL: quote(server), Token: quote(p.Token), Arch: quote(p.Arch), Action: quote(p.Action),
		Keys: quote(strings.Join(keys, " "))}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, pl.tmpl, d); err != nil {
		return nil, fmt.Errorf("installscript: rendering %s: %w", pl.tmpl, err)
	}
	return buf.Bytes(), nil
}

// shQuote is s as one POSIX shell word: single-quoted, each single quote
// written as quote, backslash, quote, quote (validation already keeps quotes
// out; this is belt and braces).
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// psQuote is s as a PowerShell verbatim string: single-quoted, with every
// quote character PowerShell accepts as one (' and the typographic ‘ ’ ‚ ‛)
// doubled.
func psQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

func archList(platform string) string {
	var a []string
	for _, p := range agentbin.Platforms {
		if p.OS == platform {
			a = append(a, p.Arch)
		}
	}
	return strings.Join(a, ", ")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
