package scanner

// Flatpak scans and installs pending updates of installed flatpak apps
// and runtimes: the system installation, and the running user's when
// Options.FlatpakUser is set.
//
// `flatpak remote-ls --updates --columns=…` is the machine-readable
// source: when stdout is not a terminal flatpak prints no header and
// separates the cells of a row with tabs (trailing empty cells are chomped,
// so the optional version column comes last). It fetches the remotes'
// summaries but changes no installation. `flatpak update --appstream` and
// `--no-deploy` were ruled out: the first only refreshes metadata, the
// second downloads the updates. The installed version comes from
// `flatpak list --columns=…`. --columns needs flatpak 1.2 (2019) or later.
//
// A ref is reported as ID/ARCH/BRANCH (org.mozilla.firefox/x86_64/stable):
// an app ID alone is not unique (runtimes such as org.freedesktop.Platform
// are commonly installed in several branches), and flatpak update accepts
// that form as is.
//
// Flatpak remotes publish no severities: every update is "unknown".

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Flatpak is the flatpak scanner and installer.
type Flatpak struct {
	r Runner
	o Options
}

var _ interface {
	Scanner
	Installer
} = (*Flatpak)(nil)

// NewFlatpak returns the flatpak scanner and installer.
func NewFlatpak(r Runner, o Options) *Flatpak { return &Flatpak{r: r, o: o} }

// Name implements Scanner and Installer.
func (f *Flatpak) Name() string { return protocol.PkgFlatpak }

// Available implements Scanner.
func (f *Flatpak) Available(context.Context) bool {
	_, err := f.r.LookPath("flatpak")
	return err == nil
}

// installations are the installations this scanner covers, as flags.
func (f *Flatpak) installations() []string {
	if f.o.FlatpakUser {
		return []string{"--system", "--user"}
	}
	return []string{"--system"}
}

const (
	flatpakRemoteColumns = "--columns=application,arch,branch,origin,commit,version"
	flatpakListColumns   = "--columns=application,arch,branch,version"
)

// Scan implements Scanner.
func (f *Flatpak) Scan(ctx context.Context) ([]protocol.Update, error) {
	if !f.Available(ctx) {
		return nil, ErrUnavailable
	}
	return f.pending(ctx, f.r.Run)
}

// pending lists the pending updates of every covered installation; a ref
// pending in both is reported once, naming both installations.
func (f *Flatpak) pending(ctx context.Context, run mgrRunFunc) ([]protocol.Update, error) {
	var ups []protocol.Update
	index := map[string]int{}
	for _, inst := range f.installations() {
		where := strings.TrimPrefix(inst, "--")
		res, err := run(ctx, "flatpak", "remote-ls", "--updates", inst, flatpakRemoteColumns)
		if err != nil {
			return nil, fmt.Errorf("running flatpak remote-ls --updates %s: %w", inst, err)
		}
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("flatpak remote-ls --updates %s exited %d: %s", inst, res.ExitCode, mgrLastLine(res))
		}
		rows, unparsed := parseFlatpakRows(res.Stdout, 6)
		if len(rows) == 0 && unparsed > 0 {
			return nil, fmt.Errorf("flatpak remote-ls --updates %s: unrecognised output: %d lines, none of the form "+
				"application<TAB>arch<TAB>branch<TAB>origin<TAB>commit[<TAB>version]", inst, unparsed)
		}
		if len(rows) == 0 {
			continue
		}
		lres, err := run(ctx, "flatpak", "list", inst, flatpakListColumns)
		if err != nil {
			return nil, fmt.Errorf("running flatpak list %s: %w", inst, err)
		}
		if lres.ExitCode != 0 {
			return nil, fmt.Errorf("flatpak list %s exited %d: %s", inst, lres.ExitCode, mgrLastLine(lres))
		}
		current := map[string]string{}
		listed, _ := parseFlatpakRows(lres.Stdout, 4)
		for _, l := range listed {
			current[flatpakRef(l)] = l[3]
		}
		for _, r := range rows {
			ref := flatpakRef(r)
			if i, ok := index[ref]; ok {
				ups[i].Metadata["installation"] += "," + where
				continue
			}
			index[ref] = len(ups)
			ups = append(ups, protocol.Update{PackageType: protocol.PkgFlatpak, PackageName: ref,
				CurrentVersion: current[ref], AvailableVersion: r[5], Source: r[3], Severity: protocol.SevUnknown,
				CVEIDs: []string{}, Metadata: map[string]string{"application": r[0], "arch": r[1], "branch": r[2],
					"commit": r[4], "installation": where}})
		}
	}
	return ups, nil
}

// flatpakRef is the ID/ARCH/BRANCH of a parsed row.
func flatpakRef(row []string) string { return row[0] + "/" + row[1] + "/" + row[2] }

var (
	flatpakIDRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)+$`)
	flatpakArchRe   = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	flatpakBranchRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

// parseFlatpakRows parses flatpak's non-terminal table output: one row per
// line, cells separated by tabs, trailing empty cells chomped. Every row
// is padded to n cells; a row with more cells, or whose first three
// (application, arch, branch) are not a valid ref (one the installer would
// accept), is counted as unparsed.
func parseFlatpakRows(out []byte, n int) ([][]string, int) {
	var rows [][]string
	unparsed := 0
	for _, l := range mgrLines(out) {
		if strings.TrimSpace(l) == "" {
			continue
		}
		cells := strings.Split(l, "\t")
		if len(cells) > n || len(cells) < 3 || len(rows) >= MaxUpdates {
			unparsed++
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		for len(cells) < n {
			cells = append(cells, "")
		}
		if !flatpakIDRe.MatchString(cells[0]) || !flatpakArchRe.MatchString(cells[1]) || !flatpakBranchRe.MatchString(cells[2]) ||
			len(flatpakRef(cells)) > flatpakRefRule.max {
			unparsed++
			continue
		}
		rows = append(rows, cells)
	}
	return rows, unparsed
}

// A ref is ID, or ID/ARCH/BRANCH as the scanner reports it. Versions come
// from AppStream data and are free-form upstream; the rule admits the usual
// version characters, so an update whose version has spaces cannot be
// installed through RedFlag (it is refused, not run).
var (
	flatpakRefRule = mgrRule{what: "flatpak ref", max: 255,
		re: regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)+(/[A-Za-z0-9_]+/[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)}
	flatpakVersionRule = mgrRule{what: "version", re: regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~:-]*$`), max: 128}
)

func flatpakCheckItem(it protocol.InstallItem) error {
	if err := flatpakRefRule.check(it.PackageName); err != nil {
		return err
	}
	if it.Version != "" {
		return flatpakVersionRule.check(it.Version)
	}
	return nil
}

// Install implements Installer: `flatpak update -y --noninteractive
// [--system] -- ref…` (without --system when the user installation is
// covered too, so that flatpak updates the ref wherever it is installed),
// then judged per ref by listing the pending updates again.
//
// Dry run: flatpak has no preview that changes nothing (--no-deploy
// downloads the update into the local repository; the interactive
// transaction summary needs a terminal and a prompt to decline), so the dry
// run reports the requested changes plus what it can learn read-only:
// flatpak update also updates an app's runtime when that has an update
// pending, so each requested ref's runtime (`flatpak info --show-runtime`,
// in every covered installation that has the ref) that is pending in
// `flatpak remote-ls --updates` and not itself requested is an extra. Fail
// safe: when a runtime cannot be determined (flatpak info fails other than
// "not installed" in one installation, the ref is installed in none, or
// its output is unrecognised) or the pending updates cannot be listed, the
// dry run fails rather than under-report. Not foreseen: new dependencies
// (a runtime branch an update switches to, extensions such as GL drivers
// or locales); a runtime pending in the system installation is reported
// even when only the user installation's app uses it (over-reporting
// only asks for a confirmation too many).
//
// A real install lists in Changes the requested refs and whatever else
// flatpak's output says it updated, installed or uninstalled (the
// runtimes, mostly), without versions.
func (f *Flatpak) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	ok, refused := mgrPartition(protocol.PkgFlatpak, items, flatpakCheckItem)
	res := InstallResult{Results: refused}
	if len(ok) == 0 {
		return res, nil
	}
	if dryRun {
		extras, err := f.runtimeExtras(ctx, ok)
		if err != nil {
			res.Results = append(res.Results, mgrFailAll(ok, "dry run: "+err.Error())...)
			return res, fmt.Errorf("flatpak dry run: %w", err)
		}
		res.Changes = append(mgrRequested(protocol.PkgFlatpak, ok), extras...)
		res.Extras = extras
		return res, nil
	}
	args := []string{"update", "-y", "--noninteractive"}
	if !f.o.FlatpakUser {
		args = append(args, "--system")
	}
	args = append(append(args, "--"), mgrNames(ok)...)
	var out mgrOutput
	run, err := mgrRun(ctx, f.r, f.o.Timeout, "flatpak", args...)
	out.add(append([]string{"flatpak"}, args...), run)
	res.Output, res.ExitCode = out.String(), run.ExitCode
	res.Changes = mgrRequested(protocol.PkgFlatpak, ok)
	for _, c := range parseFlatpakUpdateOutput(run.Stdout) {
		if !flatpakRequested(ok, c.PackageName) {
			res.Changes = append(res.Changes, c)
		}
	}
	if err != nil {
		res.Results = append(res.Results, mgrFailAll(ok, "flatpak update did not finish: "+err.Error())...)
		return res, fmt.Errorf("running flatpak update: %w", err)
	}
	if run.ExitCode != 0 {
		// flatpak resolves every ref before changing anything, so a
		// failure here (a ref not installed, say) usually means nothing
		// was updated; the next scan shows the truth either way.
		res.Results = append(res.Results, mgrFailAll(ok, fmt.Sprintf("flatpak update exited %d: %s", run.ExitCode, mgrLastLine(run)))...)
		return res, nil
	}
	stillPending, err := f.pending(ctx, func(ctx context.Context, name string, args ...string) (Result, error) {
		return mgrRun(ctx, f.r, f.o.Timeout, name, args...)
	})
	if err != nil {
		for _, it := range ok {
			res.Results = append(res.Results, mgrInstalled(it, it.Version,
				"flatpak update exited 0; not verified (listing pending updates again failed: "+err.Error()+")"))
		}
		return res, nil
	}
	for _, it := range ok {
		if u, pending := flatpakFind(stillPending, it.PackageName); pending {
			res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("flatpak update exited 0 but %s still has an update pending (to %s)",
				u.PackageName, u.AvailableVersion)))
			continue
		}
		res.Results = append(res.Results, mgrInstalled(it, it.Version, ""))
	}
	return res, nil
}

// flatpakFind finds the pending update for ref (ID/ARCH/BRANCH, or a bare
// ID matching any branch).
func flatpakFind(ups []protocol.Update, ref string) (protocol.Update, bool) {
	for _, u := range ups {
		if u.PackageName == ref || u.Metadata["application"] == ref {
			return u, true
		}
	}
	return protocol.Update{}, false
}

// runtimeExtras are the pending runtime updates that updating items would
// pull in (see Install), in the order first met.
func (f *Flatpak) runtimeExtras(ctx context.Context, items []protocol.InstallItem) ([]protocol.PackageChange, error) {
	var runtimes []string
	seen := map[string]bool{}
	for _, it := range items {
		installed := false
		for _, inst := range f.installations() {
			args := []string{"info", inst, "--show-runtime", "--", it.PackageName}
			res, err := mgrRun(ctx, f.r, f.o.Timeout, "flatpak", args...)
			if err != nil {
				return nil, fmt.Errorf("running flatpak %s: %w", strings.Join(args, " "), err)
			}
			if res.ExitCode != 0 {
				if flatpakNotInstalled(res) {
					continue
				}
				return nil, fmt.Errorf("cannot tell the runtime of %s: flatpak info %s exited %d: %s",
					it.PackageName, inst, res.ExitCode, mgrLastLine(res))
			}
			installed = true
			rt, err := parseFlatpakRuntime(res.Stdout)
			if err != nil {
				return nil, fmt.Errorf("cannot tell the runtime of %s: flatpak info %s --show-runtime: %w", it.PackageName, inst, err)
			}
			if rt != "" && !seen[rt] {
				seen[rt] = true
				runtimes = append(runtimes, rt)
			}
		}
		if !installed {
			return nil, fmt.Errorf("cannot tell the runtime of %s: not installed in the %s installation",
				it.PackageName, strings.Join(f.where(), " or "))
		}
	}
	var extras []protocol.PackageChange
	var pending []protocol.Update
	listed := false
	for _, rt := range runtimes {
		if flatpakRequested(items, rt) {
			continue
		}
		if !listed {
			var err error
			pending, err = f.pending(ctx, func(ctx context.Context, name string, args ...string) (Result, error) {
				return mgrRun(ctx, f.r, f.o.Timeout, name, args...)
			})
			if err != nil {
				return nil, fmt.Errorf("cannot tell whether the runtimes have updates pending: %w", err)
			}
			listed = true
		}
		u, ok := flatpakFind(pending, rt)
		if !ok {
			continue
		}
		to := u.AvailableVersion
		if to == "" {
			to = u.Metadata["commit"] // runtimes seldom have AppStream versions
		}
		extras = append(extras, protocol.PackageChange{PackageType: protocol.PkgFlatpak, PackageName: u.PackageName,
			Action: "upgrade", FromVersion: u.CurrentVersion, ToVersion: to})
	}
	return extras, nil
}

// where names the covered installations (system, user).
func (f *Flatpak) where() []string {
	var w []string
	for _, inst := range f.installations() {
		w = append(w, strings.TrimPrefix(inst, "--"))
	}
	return w
}

// flatpakNotInstalled reports whether a failed flatpak command said the
// ref is not installed ("error: REF not installed"; the agent runs tools
// with LC_ALL=C).
func flatpakNotInstalled(res Result) bool {
	l := mgrLastLine(res)
	return strings.HasPrefix(l, "error: ") && strings.HasSuffix(l, " not installed") && !strings.Contains(l, "\n")
}

// flatpakRequested reports whether ref (ID/ARCH/BRANCH) is among items,
// which name refs as ID/ARCH/BRANCH or as a bare ID (any branch).
func flatpakRequested(items []protocol.InstallItem, ref string) bool {
	id, _, _ := strings.Cut(ref, "/")
	for _, it := range items {
		if it.PackageName == ref || it.PackageName == id {
			return true
		}
	}
	return false
}

// parseFlatpakRuntime parses `flatpak info --show-runtime`: one line, the
// runtime's ID/ARCH/BRANCH, or "-" when the metadata names none (a
// runtime's own metadata usually names itself). It returns "" for none,
// and an error for anything else.
func parseFlatpakRuntime(out []byte) (string, error) {
	var lines []string
	for _, l := range mgrLines(out) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		return "", fmt.Errorf("unrecognised output: %d non-empty lines, want one runtime ref", len(lines))
	}
	if lines[0] == "-" {
		return "", nil
	}
	if strings.Count(lines[0], "/") != 2 || flatpakRefRule.check(lines[0]) != nil {
		return "", fmt.Errorf("unrecognised output: %.80q is not a runtime ref ID/ARCH/BRANCH", lines[0])
	}
	return lines[0], nil
}

// flatpakOps are the verbs of flatpak's quiet transaction output
// ("Updating KIND/ID/ARCH/BRANCH") and their change actions.
var flatpakOps = []struct{ verb, action string }{
	{"Updating ", "upgrade"}, {"Installing ", "install"}, {"Uninstalling ", "remove"},
}

// parseFlatpakUpdateOutput parses the operations `flatpak update -y
// --noninteractive` reports, as changes without versions, each ref once;
// other lines are skipped.
func parseFlatpakUpdateOutput(out []byte) []protocol.PackageChange {
	var changes []protocol.PackageChange
	seen := map[string]bool{}
	for _, l := range mgrLines(out) {
		l = strings.TrimSpace(l)
		for _, op := range flatpakOps {
			rest, ok := strings.CutPrefix(l, op.verb)
			if !ok {
				continue
			}
			kind, ref, ok := strings.Cut(rest, "/")
			if !ok || (kind != "app" && kind != "runtime") || strings.Count(ref, "/") != 2 ||
				flatpakRefRule.check(ref) != nil || seen[ref] || len(changes) >= MaxUpdates {
				break
			}
			seen[ref] = true
			changes = append(changes, protocol.PackageChange{PackageType: protocol.PkgFlatpak, PackageName: ref, Action: op.action})
			break
		}
	}
	return changes
}
