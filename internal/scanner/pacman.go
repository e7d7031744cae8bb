package scanner

// Pacman scans and installs repository updates on Arch Linux and its
// derivatives.
//
// Scanning never touches the live sync databases: `pacman -Sy` followed
// later by `pacman -S pkg` is a partial upgrade, which Arch does not
// support. With pacman-contrib's checkupdates the databases are synced into
// a private temporary copy (fresh results, nothing shared is changed).
// Without it, `pacman -Qu` compares the installed packages against the sync
// databases as they are, which are only as recent as the last `pacman -Sy`
// on the machine: those results may be stale, and each update says so in
// its metadata. Options.RefreshLists does not change this for the same
// reason.
//
// pacman has no notion of severity: every update is "unknown".

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Pacman is the pacman scanner and installer.
type Pacman struct {
	r Runner
	o Options
}

var _ interface {
	Scanner
	Installer
} = (*Pacman)(nil)

// NewPacman returns the pacman scanner and installer.
func NewPacman(r Runner, o Options) *Pacman { return &Pacman{r: r, o: o} }

// Name implements Scanner and Installer.
func (p *Pacman) Name() string { return protocol.PkgPacman }

// Available implements Scanner.
func (p *Pacman) Available(context.Context) bool {
	_, err := p.r.LookPath("pacman")
	return err == nil
}

// Scan implements Scanner.
func (p *Pacman) Scan(ctx context.Context) ([]protocol.Update, error) {
	if !p.Available(ctx) {
		return nil, ErrUnavailable
	}
	if _, err := p.r.LookPath("checkupdates"); err == nil {
		res, err := p.r.Run(ctx, "checkupdates")
		if err != nil {
			return nil, fmt.Errorf("running checkupdates: %w", err)
		}
		switch res.ExitCode {
		case 0:
		case 2: // checkupdates(8): "No updates are available"
			return nil, nil
		default:
			return nil, fmt.Errorf("checkupdates exited %d (it syncs a private copy of the databases, so the mirrors must be reachable): %s",
				res.ExitCode, mgrLastLine(res))
		}
		return pacmanUpdates(protocol.PkgPacman, "checkupdates", res.Stdout, map[string]string{"checked_with": "checkupdates"})
	}
	res, err := p.r.Run(ctx, "pacman", "-Qu")
	if err != nil {
		return nil, fmt.Errorf("running pacman -Qu: %w", err)
	}
	// pacman -Qu exits 1 when it finds nothing to upgrade; an error is
	// reported on stderr with the same exit code.
	if res.ExitCode != 0 {
		if res.ExitCode == 1 && len(bytes.TrimSpace(res.Stdout)) == 0 && !mgrContains(res, "error") {
			return nil, nil
		}
		return nil, fmt.Errorf("pacman -Qu exited %d: %s", res.ExitCode, mgrLastLine(res))
	}
	return pacmanUpdates(protocol.PkgPacman, "pacman -Qu", res.Stdout, map[string]string{
		"checked_with": "pacman -Qu",
		"sync_db":      "may be stale: compared with the sync databases as last refreshed (install pacman-contrib for checkupdates)",
	})
}

// pacmanUpdates turns "name old -> new" output into Updates.
func pacmanUpdates(pkgType, what string, out []byte, md map[string]string) ([]protocol.Update, error) {
	ups, unparsed := parsePacmanUpdates(out)
	if len(ups) == 0 && unparsed > 0 {
		return nil, fmt.Errorf("%s: unrecognised output: %d lines, none of the form \"name old -> new\"", what, unparsed)
	}
	out2 := make([]protocol.Update, 0, len(ups))
	for _, u := range ups {
		// IgnorePkg/IgnoreGroup are the admin's own holds: checkupdates
		// hides them, and so does pacman -Qu's report here.
		if u.Ignored {
			continue
		}
		m := make(map[string]string, len(md))
		for k, v := range md {
			m[k] = v
		}
		out2 = append(out2, protocol.Update{PackageType: pkgType, PackageName: u.Name, CurrentVersion: u.From,
			AvailableVersion: u.To, Severity: protocol.SevUnknown, CVEIDs: []string{}, Metadata: m})
	}
	return out2, nil
}

// pacmanUpdate is one "name old -> new" line.
type pacmanUpdate struct {
	Name, From, To string
	Ignored        bool
}

var (
	pacmanUpdateRe  = regexp.MustCompile(`^([A-Za-z0-9@_+][A-Za-z0-9@._+-]*) (\S+) -> (\S+)( \[ignored\])?$`)
	pacmanNameVerRe = regexp.MustCompile(`^([A-Za-z0-9@_+][A-Za-z0-9@._+-]*) (\S+)$`)
)

// parsePacmanUpdates parses the "name old -> new" lines printed by
// checkupdates, pacman -Qu, paru -Qua and yay -Qua (pacman appends
// " [ignored]" for IgnorePkg packages; colour codes are stripped). It
// returns the updates and how many non-empty lines it did not understand
// (helpers print the odd status line; a caller decides whether none
// understood is an error).
func parsePacmanUpdates(out []byte) ([]pacmanUpdate, int) {
	var ups []pacmanUpdate
	unparsed := 0
	for _, l := range mgrLines(out) {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		m := pacmanUpdateRe.FindStringSubmatch(l)
		if m == nil || len(ups) >= MaxUpdates {
			unparsed++
			continue
		}
		ups = append(ups, pacmanUpdate{Name: m[1], From: m[2], To: m[3], Ignored: m[4] != ""})
	}
	return ups, unparsed
}

// pacmanPkg is one "name version" line of `pacman -Q` or of
// `pacman -S --print --print-format '%n %v'`.
type pacmanPkg struct{ Name, Version string }

// parsePacmanNameVersion parses "name version" lines in order; other
// lines (warnings) are skipped.
func parsePacmanNameVersion(out []byte) []pacmanPkg {
	var pkgs []pacmanPkg
	for _, l := range mgrLines(out) {
		m := pacmanNameVerRe.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || len(pkgs) >= MaxUpdates {
			continue
		}
		pkgs = append(pkgs, pacmanPkg{Name: m[1], Version: m[2]})
	}
	return pkgs
}

func pacmanVersions(out []byte) map[string]string {
	m := map[string]string{}
	for _, p := range parsePacmanNameVersion(out) {
		m[p.Name] = p.Version
	}
	return m
}

// Package names: makepkg allows alphanumerics and @._+- and no leading
// hyphen or dot. Versions: [epoch:]pkgver[-pkgrel], pkgver without
// hyphens, colons, slashes or whitespace.
var (
	pacmanNameRule    = mgrRule{what: "package name", re: regexp.MustCompile(`^[A-Za-z0-9@_+][A-Za-z0-9@._+-]*$`), max: 256}
	pacmanVersionRule = mgrRule{what: "version", re: regexp.MustCompile(`^([0-9]+:)?[A-Za-z0-9._+~@]+(-[0-9]+(\.[0-9]+)?)?$`), max: 256}
)

func pacmanCheckItem(it protocol.InstallItem) error {
	if err := pacmanNameRule.check(it.PackageName); err != nil {
		return err
	}
	if it.Version != "" {
		return pacmanVersionRule.check(it.Version)
	}
	return nil
}

// Install implements Installer: `pacman -S --noconfirm --needed -- name…`
// against the sync databases as they are (see the package comment on
// partial upgrades), judged per package by `pacman -Q` before and after.
// The dry run asks pacman for the transaction it would make
// (`--print --print-format '%n %v'`), which includes new dependencies.
func (p *Pacman) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	ok, refused := mgrPartition(protocol.PkgPacman, items, pacmanCheckItem)
	res := InstallResult{Results: refused}
	if len(ok) == 0 {
		return res, nil
	}
	names := mgrNames(ok)
	if dryRun {
		return p.dryRun(ctx, ok, names, res)
	}
	args := append([]string{"-S", "--noconfirm", "--needed", "--"}, names...)
	return pacmanApply(ctx, p.r, p.o.Timeout, "pacman", args, ok, res, func(it protocol.InstallItem, v string) string {
		return fmt.Sprintf("pacman left %s at %s: the machine's sync database has no newer version (the scan used a fresher "+
			"private copy; RedFlag never runs pacman -Sy because a later pacman -S would then be a partial upgrade: run pacman -Syu)",
			it.PackageName, v)
	})
}

func (p *Pacman) dryRun(ctx context.Context, items []protocol.InstallItem, names []string, res InstallResult) (InstallResult, error) {
	args := append([]string{"-S", "--print", "--print-format", "%n %v", "--noconfirm", "--needed", "--"}, names...)
	var out mgrOutput
	pr, err := mgrRun(ctx, p.r, p.o.Timeout, "pacman", args...)
	out.add(append([]string{"pacman"}, args...), pr)
	res.Output, res.ExitCode = out.String(), pr.ExitCode
	if err != nil {
		res.Results = append(res.Results, mgrFailAll(items, "could not run pacman: "+err.Error())...)
		return res, fmt.Errorf("pacman dry run: %w", err)
	}
	if pr.ExitCode != 0 {
		res.Results = append(res.Results, mgrFailAll(items, fmt.Sprintf("pacman -S --print exited %d: %s", pr.ExitCode, mgrLastLine(pr)))...)
		return res, nil
	}
	targets := parsePacmanNameVersion(pr.Stdout)
	installed := map[string]string{}
	if len(targets) > 0 {
		qargs := []string{"-Q", "--"}
		for _, t := range targets {
			qargs = append(qargs, t.Name)
		}
		// Exit 1 only means some targets are not installed yet (new
		// dependencies): that is the answer, not a failure.
		q, err := mgrRun(ctx, p.r, p.o.Timeout, "pacman", qargs...)
		if err != nil {
			return res, fmt.Errorf("pacman dry run: querying installed versions: %w", err)
		}
		installed = pacmanVersions(q.Stdout)
	}
	requested := map[string]bool{}
	for _, n := range names {
		requested[n] = true
	}
	planned := map[string]bool{}
	for _, t := range targets {
		planned[t.Name] = true
		c := protocol.PackageChange{PackageType: protocol.PkgPacman, PackageName: t.Name, Action: "install", ToVersion: t.Version}
		if from, ok := installed[t.Name]; ok {
			c.Action, c.FromVersion = "upgrade", from
		}
		res.Changes = append(res.Changes, c)
		if !requested[t.Name] {
			res.Extras = append(res.Extras, c)
		}
	}
	for _, it := range items {
		if !planned[it.PackageName] {
			res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("pacman would not upgrade %s: its sync database has no newer "+
				"version (the scan used a fresher private copy; run pacman -Syu)", it.PackageName)))
		}
	}
	return res, nil
}

// pacmanApply runs prog args (pacman, or an AUR helper installing through
// pacman) between two `pacman -Q` snapshots and judges each item by what
// is installed afterwards: a changed version, or the requested one, is
// installed; anything else failed, with the tool's error or, when it
// exited 0, unchanged(item, version) explaining why nothing happened.
func pacmanApply(ctx context.Context, r Runner, timeout time.Duration, prog string, args []string, items []protocol.InstallItem,
	res InstallResult, unchanged func(protocol.InstallItem, string) string) (InstallResult, error) {
	qargs := append([]string{"-Q", "--"}, mgrNames(items)...)
	pre, err := mgrRun(ctx, r, timeout, "pacman", qargs...)
	if err != nil {
		res.Results = append(res.Results, mgrFailAll(items, "nothing was run: could not query installed versions: "+err.Error())...)
		return res, fmt.Errorf("pacman -Q before the install: %w", err)
	}
	before := pacmanVersions(pre.Stdout)

	var out mgrOutput
	run, err := mgrRun(ctx, r, timeout, prog, args...)
	out.add(append([]string{prog}, args...), run)
	res.Output, res.ExitCode = out.String(), run.ExitCode
	if err != nil {
		res.Results = append(res.Results, mgrFailAll(items, fmt.Sprintf("%s did not finish: %v", prog, err))...)
		return res, fmt.Errorf("running %s: %w", prog, err)
	}
	post, err := mgrRun(ctx, r, timeout, "pacman", qargs...)
	if err != nil {
		res.Results = append(res.Results, mgrFailAll(items, fmt.Sprintf("%s exited %d but the result could not be checked: %v",
			prog, run.ExitCode, err))...)
		return res, fmt.Errorf("pacman -Q after the install: %w", err)
	}
	after := pacmanVersions(post.Stdout)
	for _, it := range items {
		now, have := after[it.PackageName]
		switch {
		case have && (now == it.Version || now != before[it.PackageName]):
			res.Results = append(res.Results, mgrInstalled(it, now, ""))
		case run.ExitCode != 0:
			res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("%s exited %d: %s", prog, run.ExitCode, mgrLastLine(run))))
		case !have:
			res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("%s is not installed after %s", it.PackageName, prog)))
		default:
			res.Results = append(res.Results, mgrFail(it, unchanged(it, now)))
		}
	}
	return res, nil
}
