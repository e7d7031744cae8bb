package scanner

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// DebianRebootRequiredFile is where Debian and Ubuntu flag a pending reboot.
const DebianRebootRequiredFile = "/var/run/reboot-required"

// aptLockTimeoutSeconds is how long a real install waits for the dpkg lock
// (unattended-upgrades or an admin's apt may hold it) instead of failing at
// once. Older apt ignores the unknown option.
const aptLockTimeoutSeconds = "120"

// APT scans and installs Debian and Ubuntu packages through apt-get.
type APT struct {
	r Runner
	o Options
	// rebootFile is checked after an install; tests point it elsewhere.
	rebootFile string
}

// NewAPT returns the apt scanner and installer.
func NewAPT(r Runner, o Options) *APT {
	return &APT{r: r, o: o, rebootFile: DebianRebootRequiredFile}
}

// Name implements Scanner and Installer.
func (*APT) Name() string { return protocol.PkgAPT }

// Available implements Scanner: apt-get is on PATH.
func (a *APT) Available(context.Context) bool {
	_, err := a.r.LookPath("apt-get")
	return err == nil
}

// aptSimulateUpgrade is the read-only plan of a full upgrade. NoLocking lets
// it run while another apt holds the lock and without root.
var aptSimulateUpgrade = []string{"-s", "-o", "Debug::NoLocking=1", "dist-upgrade"}

// Scan implements Scanner. The simulated dist-upgrade is the source of
// truth (it names the archive every new version comes from); `apt list
// --upgradable` adds what the upgrade would keep back (held packages,
// Ubuntu's phased updates, upgrades needing removals). A failure of the
// optional steps (list refresh, apt list) is returned along with the
// updates found, so it is reported without hiding them.
func (a *APT) Scan(ctx context.Context) ([]protocol.Update, error) {
	if !a.Available(ctx) {
		return nil, fmt.Errorf("apt-get: %w", ErrUnavailable)
	}
	var warns []error
	if a.o.RefreshLists {
		res, err := a.r.Run(ctx, "apt-get", "update")
		if err != nil {
			return nil, fmt.Errorf("refreshing package lists (apt-get update): %w", err)
		}
		if res.ExitCode != 0 {
			// Often one broken third-party source: the other lists were
			// refreshed and the scan still means something.
			warns = append(warns, fmt.Errorf("apt-get update exited %d, scanned the lists as they are: %s",
				res.ExitCode, toolFailureText(res)))
		}
	}
	res, err := a.r.Run(ctx, "apt-get", aptSimulateUpgrade...)
	if err != nil {
		return nil, fmt.Errorf("simulating apt-get dist-upgrade: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("apt-get -s dist-upgrade exited %d: %s", res.ExitCode, toolFailureText(res))
	}
	ops, perr := parseAPTSimulate(res.Stdout)
	if perr != nil {
		warns = append(warns, perr)
	}
	ups := aptUpdatesFromSimulate(ops)

	if _, err := a.r.LookPath("apt"); err == nil {
		lres, err := a.r.Run(ctx, "apt", "list", "--upgradable")
		switch {
		case err != nil:
			warns = append(warns, fmt.Errorf("apt list --upgradable: %w", err))
		case lres.ExitCode != 0:
			warns = append(warns, fmt.Errorf("apt list --upgradable exited %d: %s", lres.ExitCode, toolFailureText(lres)))
		default:
			entries, lerr := parseAPTList(lres.Stdout)
			if lerr != nil {
				warns = append(warns, lerr)
			}
			ups = mergeAPTKeptBack(ups, entries)
		}
	}
	return ups, errors.Join(warns...)
}

// aptOp is one action line of apt-get's simulation: Inst (install or
// upgrade), Remv or Purg. Conf lines repeat Inst and are skipped.
type aptOp struct {
	Action string // "Inst", "Remv" or "Purg"
	// Name as apt prints it: foreign-architecture packages carry ":arch".
	Name string
	Old  string // installed version; "" for a new package
	New  string // version to install; "" for removals
	Arch string
	// Origins are the "Label:Version/Archive" entries apt lists for the new
	// version (e.g. "Debian-Security:12/oldstable-security").
	Origins []string
}

// parseAPTSimulate reads `apt-get -s …` output. Its action lines are
//
//	Inst NAME [OLD] (NEW ORIGIN, ORIGIN… [ARCH]) [extra…]
//	Inst NAME (NEW ORIGIN [ARCH])          (a new package)
//	Remv NAME [OLD]
//
// Everything else (progress, summaries, Conf lines) is skipped. An action
// line it cannot read is skipped and reported in the error, next to the
// lines it could read.
func parseAPTSimulate(out []byte) ([]aptOp, error) {
	var p toolParseProblems
	var ops []aptOp
	eachToolLine(out, &p, func(n int, line string) {
		var action string
		switch {
		case strings.HasPrefix(line, "Inst "):
			action = "Inst"
		case strings.HasPrefix(line, "Remv "):
			action = "Remv"
		case strings.HasPrefix(line, "Purg "):
			action = "Purg"
		default:
			return
		}
		op, why := parseAPTAction(action, line[5:])
		if why != "" {
			p.add(n, why, []byte(line))
			return
		}
		ops = append(ops, op)
	})
	return ops, p.err("apt-get simulation")
}

func parseAPTAction(action, rest string) (aptOp, string) {
	op := aptOp{Action: action}
	rest = strings.TrimLeft(rest, " ")
	name, rest, _ := strings.Cut(rest, " ")
	if name == "" || strings.ContainsAny(name, "[]()") {
		return op, "no package name"
	}
	op.Name = name
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return op, "unterminated [installed version]"
		}
		op.Old = strings.TrimSpace(rest[1:end])
		rest = strings.TrimLeft(rest[end+1:], " ")
	}
	if action != "Inst" {
		return op, ""
	}
	if !strings.HasPrefix(rest, "(") {
		return op, "no (candidate version)"
	}
	// Labels of third-party origins may contain parentheses ("PPA for Foo
	// (nightly)"): find the matching one.
	depth, end := 0, -1
	for i := 0; i < len(rest) && end < 0; i++ {
		switch rest[i] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				end = i
			}
		}
	}
	if end < 0 {
		return op, "unterminated (candidate version)"
	}
	inner := strings.TrimSpace(rest[1:end])
	newV, rel, _ := strings.Cut(inner, " ")
	if newV == "" {
		return op, "no candidate version"
	}
	op.New = newV
	rel = strings.TrimSpace(rel)
	if strings.HasSuffix(rel, "]") {
		if i := strings.LastIndex(rel, "["); i >= 0 {
			op.Arch = strings.TrimSpace(rel[i+1 : len(rel)-1])
			rel = strings.TrimSpace(rel[:i])
		}
	}
	for o := range strings.SplitSeq(rel, ", ") {
		if o = strings.TrimSpace(o); o != "" {
			op.Origins = append(op.Origins, o)
		}
	}
	return op, ""
}

// aptOriginIsSecurity reports whether an origin entry as apt prints it
// ("Label:Version/Archive", "Label:Archive" or "Archive") is a security
// archive: Debian's and Ubuntu's security suites end in "-security"
// (bookworm-security, jammy-security, Ubuntu Pro's jammy-infra-security);
// before Debian 11 the suite was plain ("buster/updates" published as
// "oldoldstable") and only the label, Debian-Security, says it.
func aptOriginIsSecurity(o string) bool {
	label, archive := "", o
	if i := strings.IndexByte(o, ':'); i >= 0 {
		label, archive = o[:i], o[i+1:]
	}
	if i := strings.LastIndexByte(archive, '/'); i >= 0 {
		archive = archive[i+1:]
	}
	return strings.HasSuffix(strings.ToLower(archive), "-security") || strings.EqualFold(label, "Debian-Security")
}

// aptSeverity maps where a version comes from to a SPEC severity. APT has
// no severity field: its one signal is the archive. Debian and Ubuntu put
// security fixes (and only those) in their security archives, so a version
// offered by one is a security update, reported as important: "a security
// fix, install it soon" without claiming the critical level the archive
// does not state. Everything else is unknown: nothing is guessed from
// package names or changelogs (SPEC §7, never invented).
func aptSeverity(security bool) string {
	if security {
		return protocol.SevImportant
	}
	return protocol.SevUnknown
}

// aptSource picks the origin to show as the update's source: the security
// one when there is one (it is why the update matters), else the first.
func aptSource(origins []string) (source string, security bool) {
	for _, o := range origins {
		if aptOriginIsSecurity(o) {
			return o, true
		}
	}
	if len(origins) > 0 {
		return origins[0], false
	}
	return "", false
}

// aptUpdatesFromSimulate turns the upgrades of a simulation into updates;
// new packages and removals are not updates of anything installed.
func aptUpdatesFromSimulate(ops []aptOp) []protocol.Update {
	ups := make([]protocol.Update, 0, len(ops))
	for _, op := range ops {
		if op.Action != "Inst" || op.Old == "" {
			continue
		}
		src, sec := aptSource(op.Origins)
		ups = append(ups, protocol.Update{
			PackageType:      protocol.PkgAPT,
			PackageName:      op.Name,
			CurrentVersion:   op.Old,
			AvailableVersion: op.New,
			Severity:         aptSeverity(sec),
			Source:           src,
			CVEIDs:           []string{},
			Metadata:         map[string]string{"arch": op.Arch, "origins": strings.Join(op.Origins, ", ")},
		})
	}
	return ups
}

// aptListEntry is one line of `apt list --upgradable`.
type aptListEntry struct {
	Name    string
	Suites  []string // "jammy-updates", "jammy-security"
	Version string   // the candidate
	Arch    string
	Current string // "" when apt did not say
}

// parseAPTList reads `apt list --upgradable`:
//
//	NAME/SUITE[,SUITE…] VERSION ARCH [upgradable from: OLD]
//
// The suffix is missing in some apt versions and outputs; `apt list
// --installed` style lines ("[installed,upgradable to: NEW]") are read
// too, and installed-only lines skipped. "Listing...", notes and warnings
// are skipped.
func parseAPTList(out []byte) ([]aptListEntry, error) {
	var p toolParseProblems
	var entries []aptListEntry
	eachToolLine(out, &p, func(n int, line string) {
		line = strings.TrimSpace(line)
		first, _, _ := strings.Cut(line, " ")
		slash := strings.IndexByte(first, '/')
		if slash <= 0 || strings.HasSuffix(first, ":") {
			return // Listing..., N: notes, WARNING:
		}
		main, suffix := line, ""
		if i := strings.Index(line, " ["); i >= 0 {
			main, suffix = line[:i], strings.TrimSpace(line[i+1:])
		}
		f := strings.Fields(main)
		if len(f) != 3 {
			p.add(n, "want NAME/SUITE VERSION ARCH", []byte(line))
			return
		}
		e := aptListEntry{Name: first[:slash], Version: f[1], Arch: f[2]}
		for s := range strings.SplitSeq(first[slash+1:], ",") {
			if s != "" {
				e.Suites = append(e.Suites, s)
			}
		}
		if suffix != "" {
			if !strings.HasPrefix(suffix, "[") || !strings.HasSuffix(suffix, "]") {
				p.add(n, "unterminated [status]", []byte(line))
				return
			}
			status := suffix[1 : len(suffix)-1]
			switch {
			case strings.HasPrefix(status, "upgradable from:"):
				e.Current = strings.TrimSpace(strings.TrimPrefix(status, "upgradable from:"))
			case strings.Contains(status, "upgradable to:"):
				_, to, _ := strings.Cut(status, "upgradable to:")
				e.Current, e.Version = e.Version, strings.TrimSpace(to)
			default:
				return // installed, not upgradable
			}
		}
		entries = append(entries, e)
	})
	return entries, p.err("apt list")
}

// mergeAPTKeptBack adds the list entries the simulation did not upgrade
// (kept back, phased). An entry counts as covered when the simulation has
// the same package name, with or without an architecture qualifier; a
// second architecture of an uncovered name is reported as "name:arch".
func mergeAPTKeptBack(ups []protocol.Update, entries []aptListEntry) []protocol.Update {
	covered := map[string]bool{}
	for _, u := range ups {
		base, _, _ := strings.Cut(u.PackageName, ":")
		covered[base] = true
	}
	added := map[string]bool{}
	for _, e := range entries {
		if covered[e.Name] {
			continue
		}
		name := e.Name
		if added[name] {
			name = e.Name + ":" + e.Arch
		}
		if added[name] {
			continue
		}
		added[name] = true
		src, sec := "", false
		for _, s := range e.Suites {
			if strings.HasSuffix(s, "-security") {
				src, sec = s, true
				break
			}
		}
		if src == "" && len(e.Suites) > 0 {
			src = e.Suites[0]
		}
		ups = append(ups, protocol.Update{
			PackageType:      protocol.PkgAPT,
			PackageName:      name,
			CurrentVersion:   e.Current,
			AvailableVersion: e.Version,
			Severity:         aptSeverity(sec),
			Source:           src,
			CVEIDs:           []string{},
			Metadata: map[string]string{"arch": e.Arch, "suites": strings.Join(e.Suites, ","),
				"kept_back": "true"},
		})
	}
	return ups
}

// Debian package names (Policy §5.6.1): lower case letters, digits, + - .,
// at least two characters, starting with a letter or digit; apt accepts a
// ":arch" qualifier. Versions (§5.6.12): [epoch:]upstream[-revision] of
// letters, digits and . + ~ - (':' only after the epoch).
var (
	aptNameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9][a-z0-9-]*)?$`)
	aptVersionRe = regexp.MustCompile(`^([0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*$`)
)

// aptItemProblem says why an item must not reach apt-get ("" when fine).
// An empty version means "the candidate".
func aptItemProblem(name, version string) string {
	return toolItemProblem(name, version, aptNameRe, "a Debian package name", aptVersionRe, "a Debian version")
}

func aptTarget(it protocol.InstallItem) string {
	if it.Version == "" {
		return it.PackageName
	}
	return it.PackageName + "=" + it.Version
}

// Install implements Installer. A dry run simulates
// `apt-get install --only-upgrade NAME=VERSION…` and reports every package
// it would touch (Changes) and those beyond the requested ones (Extras:
// new dependencies, removals, other upgrades). A real install runs it
// non-interactively keeping changed config files (confdef/confold), then
// asks dpkg which version each package is at. The error is for "could not
// run": per-item failures are in Results.
func (a *APT) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	valid, refused := toolCheckItems(items, protocol.PkgAPT, aptItemProblem)
	res := InstallResult{Results: refused}
	if len(valid) == 0 {
		return res, nil
	}
	if !a.Available(ctx) {
		res.Results = append(res.Results, mgrFailAll(valid, "apt-get is not installed on this machine")...)
		return res, fmt.Errorf("apt-get: %w", ErrUnavailable)
	}
	targets := make([]string, 0, len(valid))
	for _, it := range valid {
		targets = append(targets, aptTarget(it))
	}
	targets = mgrDedupe(targets)
	if dryRun {
		return a.simulateInstall(ctx, valid, targets, res)
	}

	args := append([]string{"install", "-y", "--only-upgrade",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
		"-o", "DPkg::Lock::Timeout=" + aptLockTimeoutSeconds}, targets...)
	sctx, cancel := mgrStepContext(ctx, a.o.Timeout)
	run, err := a.r.Run(sctx, "apt-get", args...)
	cancel()
	res.Output, res.ExitCode = toolInstallOutput(run), run.ExitCode
	if err != nil && ctx.Err() != nil {
		res.Results = append(res.Results, mgrFailAll(valid, toolRunProblem("apt-get", run, err))...)
		return res, fmt.Errorf("apt-get install: %w", err)
	}
	// Even when apt-get failed or timed out part of the packages may be in:
	// dpkg knows which.
	for _, it := range valid {
		res.Results = append(res.Results, a.itemResult(ctx, it, run, err))
	}
	if flagged, ferr := rebootFlagged(a.rebootFile); ferr == nil {
		res.RebootRequired = flagged
	}
	return res, nil
}

func (a *APT) simulateInstall(ctx context.Context, valid []protocol.InstallItem, targets []string, res InstallResult) (InstallResult, error) {
	args := append([]string{"-s", "-o", "Debug::NoLocking=1", "install", "--only-upgrade"}, targets...)
	sctx, cancel := mgrStepContext(ctx, a.o.Timeout)
	defer cancel()
	run, err := a.r.Run(sctx, "apt-get", args...)
	res.Output, res.ExitCode = toolInstallOutput(run), run.ExitCode
	if err != nil {
		return res, fmt.Errorf("simulating apt-get install: %w", err)
	}
	if run.ExitCode != 0 {
		msg := fmt.Sprintf("apt-get -s install exited %d: %s", run.ExitCode, toolFailureText(run))
		res.Results = append(res.Results, mgrFailAll(valid, msg)...)
		return res, errors.New(msg)
	}
	ops, perr := parseAPTSimulate(run.Stdout)
	res.Changes, res.Extras = aptChanges(ops, valid)
	if perr != nil {
		// A plan with unreadable lines may hide an extra: do not offer it
		// for approval as complete.
		return res, fmt.Errorf("reading the apt-get simulation: %w", perr)
	}
	return res, nil
}

// aptChanges lists what a simulation would do; extras are the changes not
// among the requested packages, and every removal.
func aptChanges(ops []aptOp, requested []protocol.InstallItem) (changes, extras []protocol.PackageChange) {
	for _, op := range ops {
		c := protocol.PackageChange{PackageType: protocol.PkgAPT, PackageName: cleanText(op.Name, MaxNameLen),
			FromVersion: cleanText(op.Old, MaxVersionLen), ToVersion: cleanText(op.New, MaxVersionLen)}
		switch {
		case op.Action != "Inst":
			c.Action = "remove"
		case op.Old == "":
			c.Action = "install"
		default:
			c.Action = "upgrade"
		}
		changes = append(changes, c)
		if c.Action == "remove" || !aptRequested(op, requested) {
			extras = append(extras, c)
		}
	}
	return changes, extras
}

// aptRequested matches a simulated action against the requested names:
// exactly, or "name:arch" against a native package apt printed bare.
func aptRequested(op aptOp, requested []protocol.InstallItem) bool {
	for _, it := range requested {
		if it.PackageName == op.Name {
			return true
		}
		if base, arch, ok := strings.Cut(it.PackageName, ":"); ok && base == op.Name && arch == op.Arch {
			return true
		}
	}
	return false
}

// itemResult asks dpkg which version of the item is installed now.
func (a *APT) itemResult(ctx context.Context, it protocol.InstallItem, run Result, runErr error) protocol.InstallItemResult {
	qctx, cancel := mgrStepContext(ctx, a.o.Timeout)
	defer cancel()
	q, err := a.r.Run(qctx, "dpkg-query", "-W", "-f", "${Version}", it.PackageName)
	have := strings.TrimSpace(string(q.Stdout))
	if err != nil || q.ExitCode != 0 || have == "" {
		have = ""
	}
	return toolItemVerdict(it, have, "dpkg", toolRunProblem("apt-get", run, runErr),
		func(have, want string) bool { return have == want })
}
