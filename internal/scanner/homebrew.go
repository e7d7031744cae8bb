package scanner

// Homebrew scans and installs outdated formulae and casks, on macOS and
// Linux.
//
// `brew outdated --json=v2` prints {"formulae": […], "casks": […]}; a
// formula has name (the full name, "user/tap/name" outside homebrew/core),
// installed_versions, current_version, pinned and pinned_version, a cask
// name (its token), installed_versions and current_version. --json=v1 (a
// bare array of formulae) is gone from current Homebrew, so only v2 is
// read. HOMEBREW_NO_AUTO_UPDATE is set by the runner, so the scan reads the
// formula data as last updated; Options.RefreshLists runs `brew update`
// first.
//
// Homebrew refuses to run as root ("Running Homebrew as root is extremely
// dangerous and no longer supported"), except inside some containers: the
// refusal is recognised in its output and reported as such.
//
// Homebrew publishes no severities: every update is "unknown".

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Homebrew is the Homebrew scanner and installer.
type Homebrew struct {
	r Runner
	o Options
}

var _ interface {
	Scanner
	Installer
} = (*Homebrew)(nil)

// NewHomebrew returns the Homebrew scanner and installer.
func NewHomebrew(r Runner, o Options) *Homebrew { return &Homebrew{r: r, o: o} }

// Name implements Scanner and Installer.
func (h *Homebrew) Name() string { return protocol.PkgHomebrew }

// brew finds the brew program: on PATH, else at its default prefixes
// (a service's PATH rarely includes them).
func (h *Homebrew) brew() (string, bool) {
	return mgrFirstPath(h.r, "brew", "/opt/homebrew/bin/brew", "/usr/local/bin/brew", "/home/linuxbrew/.linuxbrew/bin/brew")
}

// Available implements Scanner.
func (h *Homebrew) Available(context.Context) bool {
	_, ok := h.brew()
	return ok
}

// errBrewRoot is returned when brew refused to run as root.
var errBrewRoot = errors.New("brew refuses to run as root (Homebrew must run as the user who owns its installation): " +
	"run the RedFlag agent's Homebrew scans and installs as that user")

func brewRefusedRoot(res Result) bool { return mgrContains(res, "Running Homebrew as root") }

// Scan implements Scanner.
func (h *Homebrew) Scan(ctx context.Context) ([]protocol.Update, error) {
	b, ok := h.brew()
	if !ok {
		return nil, ErrUnavailable
	}
	if h.o.RefreshLists {
		res, err := h.r.Run(ctx, b, "update")
		if err != nil {
			return nil, fmt.Errorf("running brew update: %w", err)
		}
		if brewRefusedRoot(res) {
			return nil, errBrewRoot
		}
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("brew update exited %d: %s", res.ExitCode, mgrLastLine(res))
		}
	}
	od, err := h.outdated(ctx, h.r.Run, b)
	if err != nil {
		return nil, err
	}
	return od.updates(), nil
}

func (h *Homebrew) outdated(ctx context.Context, run mgrRunFunc, b string) (brewOutdated, error) {
	res, err := run(ctx, b, "outdated", "--json=v2")
	if err != nil {
		return brewOutdated{}, fmt.Errorf("running brew outdated: %w", err)
	}
	if brewRefusedRoot(res) {
		return brewOutdated{}, errBrewRoot
	}
	if res.ExitCode != 0 {
		return brewOutdated{}, fmt.Errorf("brew outdated --json=v2 exited %d: %s", res.ExitCode, mgrLastLine(res))
	}
	od, err := parseBrewOutdated(res.Stdout)
	if err != nil {
		return brewOutdated{}, fmt.Errorf("brew outdated --json=v2: %w", err)
	}
	return od, nil
}

// brewItem is one outdated formula or cask.
type brewItem struct {
	Name              string   `json:"name"`
	InstalledVersions []string `json:"installed_versions"`
	CurrentVersion    string   `json:"current_version"`
	Pinned            bool     `json:"pinned"`
	PinnedVersion     *string  `json:"pinned_version"`
}

type brewOutdated struct {
	Formulae []brewItem `json:"formulae"`
	Casks    []brewItem `json:"casks"`
}

// parseBrewOutdated decodes `brew outdated --json=v2`. Lines before the
// JSON (a stray warning) are skipped, and so is anything after the object;
// items without a name are dropped. The v1 shape (a bare array of
// formulae, from Homebrew too old for v2) is an error, not "no updates".
func parseBrewOutdated(out []byte) (brewOutdated, error) {
	i := 0
	for i < len(out) {
		rest := bytes.TrimLeft(out[i:], " \t\r\n")
		if len(rest) > 0 && (rest[0] == '{' || rest[0] == '[') {
			i = len(out) - len(rest)
			break
		}
		nl := bytes.IndexByte(out[i:], '\n')
		if nl < 0 {
			i = len(out)
			break
		}
		i += nl + 1
	}
	if i >= len(out) {
		return brewOutdated{}, fmt.Errorf("no JSON object in the output (%d bytes)", len(out))
	}
	if out[i] == '[' {
		return brewOutdated{}, errors.New("got the --json=v1 array: this Homebrew is too old for --json=v2 (run brew update)")
	}
	var od brewOutdated
	if err := json.NewDecoder(bytes.NewReader(out[i:])).Decode(&od); err != nil {
		return brewOutdated{}, fmt.Errorf("decoding the JSON: %w", err)
	}
	keep := func(items []brewItem) []brewItem {
		var out []brewItem
		for _, it := range items {
			if strings.TrimSpace(it.Name) != "" && len(out) < MaxUpdates {
				out = append(out, it)
			}
		}
		return out
	}
	od.Formulae, od.Casks = keep(od.Formulae), keep(od.Casks)
	return od, nil
}

// caskName is the package name a cask is reported under: its token, or
// homebrew/cask/token when a formula of the same name is outdated too (the
// server tells updates apart by name).
func (od brewOutdated) caskName(c brewItem) string {
	for _, f := range od.Formulae {
		if f.Name == c.Name {
			return "homebrew/cask/" + c.Name
		}
	}
	return c.Name
}

func (od brewOutdated) updates() []protocol.Update {
	ups := make([]protocol.Update, 0, len(od.Formulae)+len(od.Casks))
	add := func(it brewItem, name, kind, defaultTap string) {
		md := map[string]string{"kind": kind}
		if it.Pinned {
			md["pinned"] = "true"
			if it.PinnedVersion != nil {
				md["pinned_version"] = *it.PinnedVersion
			}
		}
		if len(it.InstalledVersions) > 1 {
			md["installed_versions"] = strings.Join(it.InstalledVersions, ", ")
		}
		ups = append(ups, protocol.Update{PackageType: protocol.PkgHomebrew, PackageName: name,
			CurrentVersion: brewLast(it.InstalledVersions), AvailableVersion: it.CurrentVersion, Source: brewTap(name, defaultTap),
			Severity: protocol.SevUnknown, CVEIDs: []string{}, Metadata: md})
	}
	for _, f := range od.Formulae {
		add(f, f.Name, "formula", "homebrew/core")
	}
	for _, c := range od.Casks {
		add(c, od.caskName(c), "cask", "homebrew/cask")
	}
	return ups
}

func brewLast(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// brewTap is the tap of a (possibly tap-qualified) name.
func brewTap(name, dflt string) string {
	if i := strings.LastIndexByte(name, '/'); i > 0 && strings.Count(name, "/") == 2 {
		return name[:i]
	}
	return dflt
}

// Formula names and cask tokens: lowercase letters, digits and @._+-,
// optionally tap-qualified (user/repo/name). Versions: formula versions and
// cask versions (which may hold commas, "1.2.3,4567").
var (
	brewNameRule = mgrRule{what: "formula or cask name", max: 256,
		re: regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9@._+-]*$`)}
	brewVersionRule = mgrRule{what: "version", re: regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+,:~@-]*$`), max: 256}
)

func brewCheckItem(it protocol.InstallItem) error {
	if err := brewNameRule.check(it.PackageName); err != nil {
		return err
	}
	if it.Version != "" {
		return brewVersionRule.check(it.Version)
	}
	return nil
}

// brewTarget is a requested item matched to what brew lists as outdated.
type brewTarget struct {
	item protocol.InstallItem
	arg  string // what to pass to brew upgrade
	info brewItem
}

// Install implements Installer: `brew upgrade --formula name…` and
// `brew upgrade --cask name…` (the kind taken from `brew outdated`, so a
// name that is both a formula and a cask is not ambiguous), judged per
// item by listing the outdated ones again. The dry run adds --dry-run
// (Homebrew 3.x and later), whose "Would upgrade"/"Would install" lists
// give the dependencies that would change too.
func (h *Homebrew) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	ok, refused := mgrPartition(protocol.PkgHomebrew, items, brewCheckItem)
	res := InstallResult{Results: refused}
	if len(ok) == 0 {
		return res, nil
	}
	b, found := h.brew()
	if !found {
		res.Results = append(res.Results, mgrFailAll(ok, "brew is not on this machine")...)
		return res, nil
	}
	run := func(ctx context.Context, name string, args ...string) (Result, error) {
		return mgrRun(ctx, h.r, h.o.Timeout, name, args...)
	}
	before, err := h.outdated(ctx, run, b)
	if err != nil {
		if errors.Is(err, errBrewRoot) {
			res.Results = append(res.Results, mgrFailAll(ok, errBrewRoot.Error())...)
			return res, nil
		}
		res.Results = append(res.Results, mgrFailAll(ok, "nothing was run: "+err.Error())...)
		return res, err
	}
	var formulae, casks []brewTarget
	for _, it := range ok {
		t, kind := before.find(it)
		switch {
		case kind == "":
			res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("brew does not list %s as outdated (already upgraded, "+
				"or not installed); nothing was run for it", it.PackageName)))
		case t.info.Pinned:
			res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("%s is pinned (brew pin): unpin it to upgrade it; "+
				"nothing was run for it", it.PackageName)))
		case kind == "formula":
			formulae = append(formulae, t)
		default:
			casks = append(casks, t)
		}
	}
	var out mgrOutput
	groups := []struct {
		flag    string
		targets []brewTarget
	}{{"--formula", formulae}, {"--cask", casks}}
	ran := map[string]Result{} // flag → result of its brew upgrade
	var runErr error
	for gi, g := range groups {
		if len(g.targets) == 0 {
			continue
		}
		args := []string{"upgrade", g.flag}
		if dryRun {
			args = append(args, "--dry-run")
		}
		for _, t := range g.targets {
			args = append(args, t.arg)
		}
		r, err := run(ctx, b, args...)
		out.add(append([]string{b}, args...), r)
		res.Output = out.String()
		if r.ExitCode != 0 && res.ExitCode == 0 {
			res.ExitCode = r.ExitCode
		}
		if err != nil {
			// This group did not finish, later ones are not attempted;
			// an earlier one that ran is still verified below.
			for _, t := range g.targets {
				res.Results = append(res.Results, mgrFail(t.item, "brew upgrade did not finish: "+err.Error()))
			}
			for _, later := range groups[gi+1:] {
				for _, t := range later.targets {
					res.Results = append(res.Results, mgrFail(t.item, "not attempted: the brew upgrade before it did not finish"))
				}
			}
			runErr = fmt.Errorf("running brew upgrade %s: %w", g.flag, err)
			break
		}
		ran[g.flag] = r
		if dryRun {
			h.planGroup(&res, g.targets, r)
		}
	}
	if dryRun || len(ran) == 0 {
		return res, runErr
	}
	after, verr := h.outdated(ctx, run, b)
	for _, g := range groups {
		r, done := ran[g.flag]
		if !done {
			continue
		}
		for _, t := range g.targets {
			switch {
			case brewRefusedRoot(r):
				res.Results = append(res.Results, mgrFail(t.item, errBrewRoot.Error()))
			case verr != nil && r.ExitCode == 0:
				res.Results = append(res.Results, mgrInstalled(t.item, t.info.CurrentVersion,
					"brew upgrade exited 0; not verified (brew outdated failed afterwards: "+verr.Error()+")"))
			case verr != nil:
				res.Results = append(res.Results, mgrFail(t.item, fmt.Sprintf("brew upgrade exited %d: %s", r.ExitCode, mgrLastLine(r))))
			default:
				if _, still := after.find(t.item); still == "" {
					res.Results = append(res.Results, mgrInstalled(t.item, t.info.CurrentVersion, ""))
				} else {
					res.Results = append(res.Results, mgrFail(t.item, fmt.Sprintf("still outdated after brew upgrade (exit %d): %s",
						r.ExitCode, mgrLastLine(r))))
				}
			}
		}
	}
	return res, runErr
}

// find matches a requested item to an outdated formula or cask; kind is
// "formula", "cask" or "" when brew does not list it.
func (od brewOutdated) find(it protocol.InstallItem) (brewTarget, string) {
	for _, f := range od.Formulae {
		if f.Name == it.PackageName {
			return brewTarget{item: it, arg: f.Name, info: f}, "formula"
		}
	}
	for _, c := range od.Casks {
		if c.Name == it.PackageName || od.caskName(c) == it.PackageName {
			return brewTarget{item: it, arg: od.caskName(c), info: c}, "cask"
		}
	}
	return brewTarget{}, ""
}

// planGroup records a dry run of one group: the requested changes (from
// and to versions as brew outdated gave them) and, from brew's preview,
// every other formula or cask that would change.
func (h *Homebrew) planGroup(res *InstallResult, targets []brewTarget, r Result) {
	requested := map[string]bool{}
	for _, t := range targets {
		requested[t.arg] = true
		requested[t.item.PackageName] = true
		requested[brewShort(t.arg)] = true
		res.Changes = append(res.Changes, protocol.PackageChange{PackageType: protocol.PkgHomebrew, PackageName: t.item.PackageName,
			Action: "upgrade", FromVersion: brewLast(t.info.InstalledVersions), ToVersion: t.info.CurrentVersion})
	}
	if brewRefusedRoot(r) {
		for _, t := range targets {
			res.Results = append(res.Results, mgrFail(t.item, errBrewRoot.Error()))
		}
		return
	}
	if r.ExitCode != 0 {
		// Homebrew before --dry-run existed says "invalid option": then
		// the requested changes are all that is known.
		if mgrContains(r, "invalid option") {
			return
		}
		for _, t := range targets {
			res.Results = append(res.Results, mgrFail(t.item, fmt.Sprintf("brew upgrade --dry-run exited %d: %s", r.ExitCode, mgrLastLine(r))))
		}
		return
	}
	for _, c := range parseBrewDryRun(r.Stdout) {
		if requested[c.PackageName] || requested[brewShort(c.PackageName)] {
			continue
		}
		requested[c.PackageName] = true
		res.Changes = append(res.Changes, c)
		res.Extras = append(res.Extras, c)
	}
}

// brewShort is a name without its tap.
func brewShort(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

var (
	brewUpgradeRe = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9@._+/-]*) (?:(\S+) )?-> (\S+)(?: \([^)]*\))?$`)
	brewInstallRe = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9@._+/-]*) (\S+)(?: \([^)]*\))?$`)
)

// parseBrewDryRun reads the changes of `brew upgrade --dry-run`: the
// entries under each "==> Would upgrade …:" or "==> Would install …:"
// heading, one per line or comma-separated on one line (dependency lists),
// "name old -> new" for upgrades and "name version" for new installs; a
// trailing "(size)" is ignored. Other headings and Warning:/Error: lines
// (such as the list of pinned formulae not upgraded) end a section.
func parseBrewDryRun(out []byte) []protocol.PackageChange {
	var changes []protocol.PackageChange
	seen := map[string]bool{}
	in := false
	for _, l := range mgrLines(out) {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			continue
		case strings.HasPrefix(l, "==>"):
			h := strings.TrimSpace(strings.TrimPrefix(l, "==>"))
			in = strings.HasPrefix(h, "Would upgrade") || strings.HasPrefix(h, "Would install")
			continue
		case strings.HasPrefix(l, "Warning:"), strings.HasPrefix(l, "Error:"):
			in = false
			continue
		case !in:
			continue
		}
		for _, entry := range strings.Split(l, ", ") {
			entry = strings.TrimSpace(entry)
			var c protocol.PackageChange
			if m := brewUpgradeRe.FindStringSubmatch(entry); m != nil {
				c = protocol.PackageChange{PackageName: m[1], Action: "upgrade", FromVersion: m[2], ToVersion: m[3]}
			} else if m := brewInstallRe.FindStringSubmatch(entry); m != nil {
				c = protocol.PackageChange{PackageName: m[1], Action: "install", ToVersion: m[2]}
			} else {
				continue
			}
			if seen[c.PackageName] || len(changes) >= MaxUpdates {
				continue
			}
			seen[c.PackageName] = true
			c.PackageType = protocol.PkgHomebrew
			changes = append(changes, c)
		}
	}
	return changes
}
