package scanner

// Helpers shared by the package manager scanners and installers (apt, dnf,
// pacman, aur, snap, flatpak, homebrew, winget): turning a tool's raw
// output into lines the parsers can trust, validating what the server asks
// to install before it reaches an argv, and the bookkeeping every
// installer repeats. The tool* helpers at the end are the apt and dnf
// flavour of reading output and validating items; they differ from the
// mgr* ones on purpose (messages, character sets, bounds) and are kept
// apart so neither family's behaviour changes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redflaghq/redflag/internal/protocol"
)

const (
	// mgrMaxLine bounds one output line: no real line of these tools comes
	// close, so a longer one is noise (or an attack) and is skipped (and,
	// by eachToolLine, reported) rather than fed to a regexp or a column
	// cutter.
	mgrMaxLine = 64 << 10
	// mgrOutputTail is how much of a tool's output an InstallResult keeps:
	// the end of a log is where the error is.
	mgrOutputTail = 32 << 10
	// mgrShellMeta are characters no package name, id or version of these
	// managers contains; refusing them is belt and braces (nothing is ever
	// given to a shell) against a server that was tricked into sending one.
	mgrShellMeta = "`$&|;<>()*?[]{}!'\"\\#"
	// mgrRefusedPrefix starts the message of an item refused by validation.
	mgrRefusedPrefix = "refused, nothing was run for it: "
	// mgrQuoteMax and toolQuoteMax are where mgrQuote cuts a value in the
	// messages of the mgr* helpers and of the apt/dnf (tool*) ones.
	mgrQuoteMax  = 80
	toolQuoteMax = 64
)

// mgrLines splits a tool's output into the lines a terminal would show:
// ANSI escape sequences are dropped, a carriage return restarts the line
// (progress spinners and bars redraw themselves that way), a backspace
// erases, other control characters and NULs vanish, tabs are kept (flatpak
// separates columns with them). Lines over mgrMaxLine are skipped.
func mgrLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if len(line) > mgrMaxLine {
			continue
		}
		// CRs ending the line are its line ending ("\r\n", or "\r\r\n"
		// from a Windows program writing CRLF through a text-mode stream).
		out = append(out, mgrRender(bytes.TrimRight(line, "\r")))
	}
	return out
}

// mgrRender renders one raw line as a terminal would (see mgrLines).
func mgrRender(line []byte) string {
	buf := make([]rune, 0, len(line))
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == 0x1b: // ESC: skip the whole sequence
			i = mgrSkipEscape(line, i)
			continue
		case c == '\r':
			// The line is redrawn from column 0: keep what was drawn last
			// (a terminal would show remnants of a longer earlier draw,
			// which are never what a parser wants).
			buf = buf[:0]
		case c == '\b':
			if len(buf) > 0 {
				buf = buf[:len(buf)-1]
			}
		case c == '\t':
			buf = append(buf, '\t')
		case c < 0x20 || c == 0x7f:
			// other control characters carry nothing we parse
		case c < utf8.RuneSelf:
			buf = append(buf, rune(c))
		default:
			r, n := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && n <= 1 {
				buf = append(buf, utf8.RuneError)
				i++
				continue
			}
			if r == 0x9b || (r >= 0x80 && r < 0xa0) { // C1 controls
				i += n
				continue
			}
			buf = append(buf, r)
			i += n
			continue
		}
		i++
	}
	return string(buf)
}

// mgrSkipEscape returns the index after the escape sequence starting at i:
// CSI (ESC [ … final byte), OSC (ESC ] … BEL or ESC \) or a two-byte one.
func mgrSkipEscape(b []byte, i int) int {
	i++ // ESC
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '[':
		for i++; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1
			}
		}
		return i
	case ']':
		for i++; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1
			}
			if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	default:
		return i + 1
	}
}

// mgrRule validates one value the server sent (a package name, id or
// version) before it may become an argument.
type mgrRule struct {
	what string
	re   *regexp.Regexp
	max  int
}

func (r mgrRule) check(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("empty %s", r.what)
	case len(v) > r.max:
		return fmt.Errorf("%s is %d bytes long (at most %d)", r.what, len(v), r.max)
	case strings.HasPrefix(v, "-"):
		return fmt.Errorf("%s %s starts with '-' and would be read as an option", r.what, mgrQuote(v, mgrQuoteMax))
	case strings.ContainsFunc(v, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }):
		return fmt.Errorf("%s %s contains whitespace or control characters", r.what, mgrQuote(v, mgrQuoteMax))
	case strings.ContainsAny(v, mgrShellMeta):
		return fmt.Errorf("%s %s contains shell metacharacters", r.what, mgrQuote(v, mgrQuoteMax))
	case !r.re.MatchString(v):
		return fmt.Errorf("%s %s is not a valid %s (want %s)", r.what, mgrQuote(v, mgrQuoteMax), r.what, r.re)
	}
	return nil
}

// mgrQuote quotes a hostile value for a message, cut to max bytes.
func mgrQuote(v string, max int) string {
	if len(v) > max {
		v = v[:max] + "…"
	}
	return fmt.Sprintf("%q", v)
}

// mgrPartition splits the requested items into those that may reach the
// tool and refusals (failed results: nothing runs for them). check
// validates one item's name and version.
func mgrPartition(pkgType string, items []protocol.InstallItem, check func(protocol.InstallItem) error) ([]protocol.InstallItem, []protocol.InstallItemResult) {
	var ok []protocol.InstallItem
	var refused []protocol.InstallItemResult
	for _, it := range items {
		err := check(it)
		if err == nil && it.PackageType != "" && it.PackageType != pkgType {
			err = fmt.Errorf("item is for package type %s, not %s", mgrQuote(it.PackageType, mgrQuoteMax), pkgType)
		}
		if err != nil {
			refused = append(refused, protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed",
				Message: mgrRefusedPrefix + err.Error()})
			continue
		}
		ok = append(ok, it)
	}
	return ok, refused
}

// mgrNames lists the distinct package names of items, in order.
func mgrNames(items []protocol.InstallItem) []string {
	var names []string
	for _, it := range items {
		names = append(names, it.PackageName)
	}
	return mgrDedupe(names)
}

// mgrDedupe drops repeated strings, keeping the first (nil stays nil).
func mgrDedupe(args []string) []string {
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

// mgrRequested is the change list of a dry run that can only repeat the
// request (the tool has no way to preview): no extras are known.
func mgrRequested(pkgType string, items []protocol.InstallItem) []protocol.PackageChange {
	var out []protocol.PackageChange
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it.PackageName] {
			continue
		}
		seen[it.PackageName] = true
		out = append(out, protocol.PackageChange{PackageType: pkgType, PackageName: it.PackageName,
			Action: "upgrade", ToVersion: it.Version})
	}
	return out
}

// mgrFail is a failed result for it.
func mgrFail(it protocol.InstallItem, msg string) protocol.InstallItemResult {
	return protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed", Message: msg}
}

// mgrFailAll is a failed result with msg for every item.
func mgrFailAll(items []protocol.InstallItem, msg string) []protocol.InstallItemResult {
	out := make([]protocol.InstallItemResult, 0, len(items))
	for _, it := range items {
		out = append(out, mgrFail(it, msg))
	}
	return out
}

// mgrInstalled is an installed result for it.
func mgrInstalled(it protocol.InstallItem, version, msg string) protocol.InstallItemResult {
	return protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "installed", InstalledVersion: version, Message: msg}
}

// mgrRunFunc is Runner.Run's shape, for code that runs with or without a
// per-step timeout.
type mgrRunFunc func(ctx context.Context, name string, args ...string) (Result, error)

// mgrRun runs one install step bounded by timeout (DefaultTimeout when 0).
func mgrRun(ctx context.Context, r Runner, timeout time.Duration, name string, args ...string) (Result, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := mgrStepContext(ctx, timeout)
	defer cancel()
	return r.Run(ctx, name, args...)
}

// mgrStepContext bounds one step by d when it is set (0: only the caller's
// context bounds it). mgrRun defaults d; apt and dnf use Options.Timeout
// as is, because an install killed half-way is worse than a slow one.
func mgrStepContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// mgrOutput is the combined, bounded output of some steps for an
// InstallResult, each introduced by its command line.
type mgrOutput struct{ b strings.Builder }

func (o *mgrOutput) add(argv []string, res Result) {
	if o.b.Len() > 0 {
		o.b.WriteString("\n")
	}
	fmt.Fprintf(&o.b, "$ %s (exit %d)\n", strings.Join(argv, " "), res.ExitCode)
	o.b.Write(res.Stdout)
	if len(res.Stderr) > 0 {
		if len(res.Stdout) > 0 && res.Stdout[len(res.Stdout)-1] != '\n' {
			o.b.WriteString("\n")
		}
		o.b.Write(res.Stderr)
	}
	// Keep memory bounded across many steps too.
	if o.b.Len() > 4*mgrOutputTail {
		s := Tail(o.b.String(), mgrOutputTail)
		o.b.Reset()
		o.b.WriteString(s)
	}
}

func (o *mgrOutput) String() string { return Tail(o.b.String(), mgrOutputTail) }

// mgrLastLine is the most telling line of a failed step for a message:
// the last line mentioning an error (stderr first), followed by the last
// line of its stream when that comes after it (winget puts the detail
// under "An unexpected error occurred…"); else the last non-empty line of
// stderr, else of stdout; bounded.
func mgrLastLine(res Result) string {
	fallback := ""
	for _, src := range [][]byte{res.Stderr, res.Stdout} {
		lines := mgrLines(src)
		last := ""
		for i := len(lines) - 1; i >= 0; i-- {
			l := strings.TrimSpace(lines[i])
			if l == "" {
				continue
			}
			if last == "" {
				last = l
			}
			if fallback == "" {
				fallback = l
			}
			if strings.Contains(strings.ToLower(l), "error") {
				if l != last {
					l += " — " + last
				}
				return mgrCut(l)
			}
		}
	}
	return mgrCut(fallback)
}

func mgrCut(s string) string {
	if len(s) > 300 {
		cut := 300
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// mgrContains reports whether any of res's output contains sub, ignoring case.
func mgrContains(res Result, sub string) bool {
	sub = strings.ToLower(sub)
	return strings.Contains(strings.ToLower(string(res.Stdout)), sub) ||
		strings.Contains(strings.ToLower(string(res.Stderr)), sub)
}

// mgrFirstPath returns the first of names the runner can find (and true),
// trying them in order.
func mgrFirstPath(r Runner, names ...string) (string, bool) {
	for _, n := range names {
		if _, err := r.LookPath(n); err == nil {
			return n, true
		}
	}
	return "", false
}

// mgrRuneWidth is the number of terminal columns r takes: 2 for East
// Asian wide and fullwidth characters (and most emoji), 0 for combining
// marks, 1 otherwise. Tables padded by display width (winget) need it; an
// approximation is enough because a misaligned row falls back to splitting
// on whitespace.
func mgrRuneWidth(r rune) int {
	switch {
	case r < 0x300:
		return 1
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200b || r == 0x200d:
		return 0
	case r >= 0x1100 && r <= 0x115f, r >= 0x2e80 && r <= 0x303e, r >= 0x3041 && r <= 0x33ff,
		r >= 0x3400 && r <= 0x4dbf, r >= 0x4e00 && r <= 0x9fff, r >= 0xa000 && r <= 0xa4cf,
		r >= 0xa960 && r <= 0xa97f, r >= 0xac00 && r <= 0xd7a3, r >= 0xf900 && r <= 0xfaff,
		r >= 0xfe10 && r <= 0xfe19, r >= 0xfe30 && r <= 0xfe6f, r >= 0xff00 && r <= 0xff60,
		r >= 0xffe0 && r <= 0xffe6, r >= 0x1f300 && r <= 0x1f64f, r >= 0x1f900 && r <= 0x1f9ff,
		r >= 0x20000 && r <= 0x3fffd:
		return 2
	}
	return 1
}

// mgrHeaderColumns returns the words of a table header and the display
// column where each starts: in a table padded to the header, those are
// where the columns start.
func mgrHeaderColumns(header string) ([]string, []int) {
	var words []string
	var starts []int
	col, inWord := 0, false
	var cur strings.Builder
	for _, r := range header {
		if r == ' ' || r == '\t' {
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
			}
			inWord = false
		} else {
			if !inWord {
				starts = append(starts, col)
			}
			inWord = true
			cur.WriteRune(r)
		}
		col += mgrRuneWidth(r)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, starts
}

// mgrCutColumns cuts line into len(starts) cells at the display columns
// starts (trimmed). aligned is false when a column boundary falls inside a
// word (a character straddles it, or the character just before it is not a
// space): the line does not follow the header, and the caller should fall
// back to another way of splitting it.
func mgrCutColumns(line string, starts []int) (cells []string, aligned bool) {
	if len(starts) == 0 {
		return nil, false
	}
	cells = make([]string, len(starts))
	bufs := make([]strings.Builder, len(starts))
	aligned = true
	col, cell := 0, 0
	for _, r := range line {
		w := mgrRuneWidth(r)
		for cell+1 < len(starts) && col >= starts[cell+1] {
			cell++
		}
		if cell+1 < len(starts) {
			next := starts[cell+1]
			if col < next && col+w > next {
				aligned = false // straddles the boundary
			}
			if col+w == next && r != ' ' && r != '\t' {
				aligned = false // a word runs into the next column
			}
		}
		bufs[cell].WriteRune(r)
		col += w
	}
	for i := range bufs {
		cells[i] = strings.TrimSpace(bufs[i].String())
	}
	return cells, aligned
}

// apt and dnf (tool*) helpers.

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
// line ending). Lines longer than mgrMaxLine are reported and skipped.
// It works on the bytes already in memory, so there is no token limit to
// hit (bufio.Scanner's 64 KiB) and no way to hang.
func eachToolLine(out []byte, p *toolParseProblems, fn func(n int, line string)) {
	n := 0
	for raw := range bytes.Lines(out) {
		n++
		if len(raw) > mgrMaxLine {
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
		return fmt.Sprintf("%s %s starts with '-' (it would be read as an option)", what, mgrQuote(s, toolQuoteMax))
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }):
		return fmt.Sprintf("%s %s contains whitespace, control or non-ASCII characters", what, mgrQuote(s, toolQuoteMax))
	case strings.ContainsAny(s, toolShellMeta):
		return fmt.Sprintf("%s %s contains shell or glob characters", what, mgrQuote(s, toolQuoteMax))
	}
	return ""
}

// toolItemProblem says why an item must not reach apt or dnf ("" when
// fine): name must match nameRe and version (when set; empty means "the
// candidate") versionRe; nameKind and versionKind describe them in the
// message ("a Debian package name").
func toolItemProblem(name, version string, nameRe *regexp.Regexp, nameKind string, versionRe *regexp.Regexp, versionKind string) string {
	if why := toolArgProblem("package name", name, 256); why != "" {
		return why
	}
	if !nameRe.MatchString(name) {
		return fmt.Sprintf("package name %s is not %s", mgrQuote(name, toolQuoteMax), nameKind)
	}
	if version == "" {
		return ""
	}
	if why := toolArgProblem("version", version, MaxVersionLen); why != "" {
		return why
	}
	if !versionRe.MatchString(version) {
		return fmt.Sprintf("version %s is not %s", mgrQuote(version, toolQuoteMax), versionKind)
	}
	return ""
}

// toolRunProblem says why the install run of bin failed ("" if it did not).
func toolRunProblem(bin string, run Result, runErr error) string {
	switch {
	case runErr != nil:
		return bin + " did not finish: " + runErr.Error()
	case run.ExitCode != 0:
		return fmt.Sprintf("%s exited %d: %s", bin, run.ExitCode, toolFailureText(run))
	}
	return ""
}

// toolItemVerdict is an item's result from the version the package database
// db ("dpkg", "rpm") reports installed now (have, "" for none) and why the
// run failed (toolRunProblem). same says whether have is the requested
// version.
func toolItemVerdict(it protocol.InstallItem, have, db, why string, same func(have, want string) bool) protocol.InstallItemResult {
	r := protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed", InstalledVersion: cleanText(have, MaxVersionLen)}
	switch {
	case have == "":
		r.Message = db + " does not list the package as installed"
		if why != "" {
			r.Message = why
		}
	case it.Version != "" && !same(have, it.Version):
		r.Message = fmt.Sprintf("installed version is %s, not the requested %s", have, it.Version)
		if why != "" {
			r.Message += "; " + why
		}
	case it.Version == "" && why != "":
		r.Message = why
	default:
		r.Status = "installed"
	}
	r.Message = cleanText(r.Message, 1024)
	return r
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
			why = fmt.Sprintf("package type %s is not %s", mgrQuote(it.PackageType, toolQuoteMax), pkgType)
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
				why = fmt.Sprintf("package %s is also requested at version %s", mgrQuote(it.PackageName, toolQuoteMax), mgrQuote(v, toolQuoteMax))
			}
		}
		if why != "" {
			refused = append(refused, mgrFail(it, "refused, nothing was run: "+why))
			continue
		}
		seen[it.PackageName] = it.Version
		ok = append(ok, it)
	}
	return ok, refused
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
