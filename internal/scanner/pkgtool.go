package scanner

// Helpers shared by the apt and dnf scanners: reading a tool's output line
// by line without trusting it, collecting parse problems, bounding step
// times and refusing install items that are not plain package names.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// maxToolLine bounds one line of a tool's output. apt and dnf lines are far
// shorter; a longer one is not a format we know, so it is skipped and
// reported instead of parsed.
const maxToolLine = 64 << 10

// toolOutputMax bounds InstallResult.Output: the end of an install log
// is where the error is, and the result travels to the server.
const toolOutputMax = 64 << 10

// errToolOutput marks output a parser could not (fully) read.
var errToolOutput = errors.New("unexpected package manager output")

// toolParseProblems collects the lines a parser could not read: a few samples
// for the error message and a count, so hostile output cannot make the
// error itself huge.
type toolParseProblems struct {
	count   int
	samples []string
}

func (p *toolParseProblems) add(lineNo int, why string, line []byte) {
	p.count++
	if len(p.samples) >= 3 {
		return
	}
	if len(line) > 80 {
		line = line[:80]
	}
	p.samples = append(p.samples, fmt.Sprintf("line %d: %s: %q", lineNo, why, line))
}

// err is nil without problems, else an error wrapping errToolOutput.
func (p *toolParseProblems) err(what string) error {
	if p.count == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %d unreadable line(s) (%s)", errToolOutput, what, p.count, strings.Join(p.samples, "; "))
}

// eachToolLine calls fn for every line of out (1-based number, without the
// line ending). Lines longer than maxToolLine are reported and skipped.
// It works on the bytes already in memory, so there is no token limit to
// hit (bufio.Scanner's 64 KiB) and no way to hang.
func eachToolLine(out []byte, p *toolParseProblems, fn func(n int, line string)) {
	n := 0
	for raw := range bytes.Lines(out) {
		n++
		if len(raw) > maxToolLine {
			p.add(n, fmt.Sprintf("line of %d bytes skipped", len(raw)), raw)
			continue
		}
		raw = bytes.TrimRight(raw, "\r\n")
		fn(n, string(raw))
	}
}

// toolLastLines returns the last n non-empty lines of s joined by " | ", each
// bounded: enough to say why a tool failed in a one-line message.
func toolLastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			keep = append(keep, cleanText(l, 300))
		}
	}
	slices.Reverse(keep)
	return strings.Join(keep, " | ")
}

// toolInstallOutput is what a tool said on both streams, for InstallResult.Output.
func toolInstallOutput(r Result) string {
	s := string(r.Stdout)
	if len(r.Stderr) > 0 {
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += string(r.Stderr)
	}
	return Tail(s, toolOutputMax)
}

// toolFailureText is the short reason a tool gave: the end of stderr, or of
// stdout when stderr is empty.
func toolFailureText(r Result) string {
	if t := toolLastLines(string(r.Stderr), 3); t != "" {
		return t
	}
	if t := toolLastLines(string(r.Stdout), 3); t != "" {
		return t
	}
	return "no output"
}

// toolStepContext bounds one install step by Options.Timeout when it is set
// (0: only the caller's context bounds it; an install killed half-way is
// worse than a slow one, so there is no default here).
func toolStepContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// toolShellMeta are characters no package name or version of apt or dnf
// contains. Arguments never pass through a shell, but refusing them
// outright keeps a hostile server from smuggling options or globs into the
// package manager's own argument parsing.
const toolShellMeta = "`$&|;<>()\\\"'*?[]{}!#=,%@"

// toolArgProblem says why s must not become an argument ("" if it may).
// what names s in the message ("package name", "version").
func toolArgProblem(what, s string, maxLen int) string {
	switch {
	case s == "":
		return what + " is empty"
	case len(s) > maxLen:
		return fmt.Sprintf("%s is longer than %d bytes", what, maxLen)
	case strings.HasPrefix(s, "-"):
		return fmt.Sprintf("%s %s starts with '-' (it would be read as an option)", what, toolQuote(s))
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }):
		return fmt.Sprintf("%s %s contains whitespace, control or non-ASCII characters", what, toolQuote(s))
	case strings.ContainsAny(s, toolShellMeta):
		return fmt.Sprintf("%s %s contains shell or glob characters", what, toolQuote(s))
	}
	return ""
}

func toolQuote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// toolCheckItems splits items into those that may run and failed results for
// the rest. check returns why an item is refused ("" to accept it). An item
// of another package type, or a second request for the same package with a
// different version, is refused too: nothing runs for a refused item.
func toolCheckItems(items []protocol.InstallItem, pkgType string, check func(name, version string) string) ([]protocol.InstallItem, []protocol.InstallItemResult) {
	var ok []protocol.InstallItem
	var refused []protocol.InstallItemResult
	seen := map[string]string{}
	for _, it := range items {
		why := ""
		if it.PackageType != "" && it.PackageType != pkgType {
			why = fmt.Sprintf("package type %s is not %s", toolQuote(it.PackageType), pkgType)
		} else {
			why = check(it.PackageName, it.Version)
		}
		if why == "" {
			if v, dup := seen[it.PackageName]; dup {
				if v == it.Version {
					// The same request twice: one argument does both.
					ok = append(ok, it)
					continue
				}
				why = fmt.Sprintf("package %s is also requested at version %s", toolQuote(it.PackageName), toolQuote(v))
			}
		}
		if why != "" {
			refused = append(refused, protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed",
				Message: "refused, nothing was run: " + why})
			continue
		}
		seen[it.PackageName] = it.Version
		ok = append(ok, it)
	}
	return ok, refused
}

// toolDedupeArgs drops repeated arguments, keeping the first.
func toolDedupeArgs(args []string) []string {
	seen := map[string]bool{}
	out := args[:0:0]
	for _, a := range args {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// toolSevRank orders SPEC severities (unknown lowest).
func toolSevRank(s string) int {
	switch s {
	case protocol.SevCritical:
		return 4
	case protocol.SevImportant:
		return 3
	case protocol.SevModerate:
		return 2
	case protocol.SevLow:
		return 1
	}
	return 0
}

// toolFailAll marks every item as failed with msg.
func toolFailAll(items []protocol.InstallItem, msg string) []protocol.InstallItemResult {
	out := make([]protocol.InstallItemResult, 0, len(items))
	for _, it := range items {
		out = append(out, protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed", Message: msg})
	}
	return out
}
