package scanner

// Winget scans and installs upgrades through the Windows Package Manager.
//
// winget has no machine-readable listing (its JSON is for export and
// import), so `winget upgrade` is read as the table it prints:
//
//	Name             Id                  Version  Available Source
//	---------------------------------------------------------------
//	Microsoft Edge   Microsoft.Edge      120.0.1  121.0.2   winget
//	Mozilla Firefox… Mozilla.Firefox     119.0    120.0     winget
//	2 upgrades available.
//
// Columns are padded to the widest cell plus one space, so the header's
// word positions are where the columns start; widths count terminal
// columns (CJK characters take two). When stdout is not a console winget
// assumes 120 columns and shortens the widest columns: a cut cell ends with
// "…" (winget before 1.3 used "..."). The header is localised with
// Windows' display language, so columns are taken by position (Name, Id,
// Version, Available, Source), never by title. Progress spinners and bars
// that redraw themselves with carriage returns or backspaces, and VT
// colour codes, are removed first (see mgrLines).
//
// The Id is the package name: display names are neither unique nor
// installable. When the Id itself was cut, `winget show --id <prefix>`
// recovers it (see fullID); an Id that stays cut is reported with metadata
// id_truncated, and installing it is refused.
//
// Installed versions winget cannot determine show as "Unknown" (shown only
// with --include-unknown), or as "< 1.2.3" when only a lower bound is known.
// The winget sources publish no severities: every update is "unknown".

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// winget's HRESULT exit codes (winget-cli doc/windows/package-manager/winget/returnCodes.md).
const (
	wingetNoApplicationsFound = 0x8A150014 // no installed package matches
	wingetUpdateNotApplicable = 0x8A15002B // no applicable update found
	wingetRebootToFinish      = 0x8A150109 // installed; a restart finishes it
	wingetRebootToInstall     = 0x8A15010A // not installed: restart, then try again
	wingetRebootInitiated     = 0x8A15010B // installed; the installer restarts the PC
)

// wingetMaxIDLookups bounds the `winget show` calls that recover cut Ids.
const wingetMaxIDLookups = 20

// Winget is the winget scanner and installer.
type Winget struct {
	r Runner
	o Options
}

var _ interface {
	Scanner
	Installer
} = (*Winget)(nil)

// NewWinget returns the winget scanner and installer.
func NewWinget(r Runner, o Options) *Winget { return &Winget{r: r, o: o} }

// Name implements Scanner and Installer.
func (w *Winget) Name() string { return protocol.PkgWinget }

// Available implements Scanner.
func (w *Winget) Available(context.Context) bool {
	_, err := w.r.LookPath("winget")
	return err == nil
}

// wingetCode is a winget exit code as the HRESULT it is (Go reports it as
// a large positive int on Windows; recorded ones may be negative).
func wingetCode(exit int) uint32 { return uint32(exit) }

// Scan implements Scanner.
func (w *Winget) Scan(ctx context.Context) ([]protocol.Update, error) {
	if !w.Available(ctx) {
		return nil, ErrUnavailable
	}
	res, err := w.r.Run(ctx, "winget", "upgrade", "--include-unknown", "--accept-source-agreements", "--disable-interactivity")
	if err != nil {
		return nil, fmt.Errorf("running winget upgrade: %w", err)
	}
	rows := parseWinget(res.Stdout)
	if code := wingetCode(res.ExitCode); code != 0 && code != wingetNoApplicationsFound && len(rows) == 0 {
		return nil, fmt.Errorf("winget upgrade exited 0x%08X: %s", code, mgrLastLine(res))
	}
	lookups := 0
	ups := make([]protocol.Update, 0, len(rows))
	for _, r := range rows {
		if r.IDTruncated && lookups < wingetMaxIDLookups {
			lookups++
			if id, ok := w.fullID(ctx, r.ID); ok {
				r.ID, r.IDTruncated = id, false
			}
		}
		md := map[string]string{"name": r.Name}
		if r.NameTruncated {
			md["name_truncated"] = "true"
		}
		id := r.ID
		if r.IDTruncated {
			md["id_truncated"] = "true"
			id += "…"
		}
		if r.Explicit {
			md["explicit_targeting"] = "true"
		}
		ups = append(ups, protocol.Update{PackageType: protocol.PkgWinget, PackageName: id, CurrentVersion: r.Version,
			AvailableVersion: r.Available, Source: r.Source, Severity: protocol.SevUnknown, CVEIDs: []string{}, Metadata: md})
	}
	return ups, nil
}

// fullID recovers an Id winget cut to prefix with `winget show --id
// prefix` (read-only; --id matches substrings): when exactly one source
// package matches, its first line names it with the whole Id in brackets,
// "Found Visual Studio Community 2022 [Microsoft.VisualStudio.2022.Community]"
// ("Found" is localised, the brackets are not). A table instead means
// several matched, and the Id stays unknown.
func (w *Winget) fullID(ctx context.Context, prefix string) (string, bool) {
	if wingetIDRule.check(prefix) != nil {
		return "", false
	}
	res, err := w.r.Run(ctx, "winget", "show", "--id", prefix, "--accept-source-agreements", "--disable-interactivity")
	if err != nil || res.ExitCode != 0 {
		return "", false
	}
	return parseWingetFound(res.Stdout, prefix)
}

var wingetFoundRe = regexp.MustCompile(`^\S.* \[([A-Za-z0-9][A-Za-z0-9._+-]*)\]$`)

// parseWingetFound finds the one "<Name> [<Id>]" line whose Id starts
// with prefix.
func parseWingetFound(out []byte, prefix string) (string, bool) {
	found := ""
	for _, l := range mgrLines(out) {
		m := wingetFoundRe.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || !strings.HasPrefix(m[1], prefix) {
			continue
		}
		if found != "" && found != m[1] {
			return "", false
		}
		found = m[1]
	}
	return found, found != ""
}

// wingetRow is one row of a winget upgrade (or list) table.
type wingetRow struct {
	Name, ID, Version, Available, Source string
	NameTruncated, IDTruncated           bool
	// Explicit marks the table of packages that "require explicit
	// targeting for upgrade" (pinned by their manifest).
	Explicit bool
}

var (
	wingetSourceRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	wingetIDCellRe = regexp.MustCompile(`^[A-Za-z0-9{][^\s]*$`)
)

// parseWinget reads every table in winget's output: a header line, a rule
// of dashes, then rows until a blank line, the next table, or a line that
// is not a row (the "N upgrades available." footer, notes about pinned or
// unknown-version packages). A header with other than 4 or 5 columns is not
// a table this parser knows, and is skipped. It never fails: output with
// no table has no rows, and the caller judges by the exit code.
func parseWinget(out []byte) []wingetRow {
	lines := mgrLines(out)
	var rows []wingetRow
	for i := 1; i < len(lines); i++ {
		if !wingetIsRule(lines[i]) {
			continue
		}
		_, starts := mgrHeaderColumns(lines[i-1])
		if len(starts) < 4 || len(starts) > 5 {
			continue
		}
		explicit := i >= 2 && strings.Contains(strings.ToLower(lines[i-2]), "explicit targeting")
		j := i + 1
		for ; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == "" || (j+1 < len(lines) && wingetIsRule(lines[j+1])) {
				break
			}
			r, ok := wingetParseRow(lines[j], starts)
			if !ok {
				break
			}
			if len(rows) < MaxUpdates {
				r.Explicit = explicit
				rows = append(rows, r)
			}
		}
		i = j - 1
	}
	return rows
}

// wingetIsRule reports whether l is the dashed rule under a header.
func wingetIsRule(l string) bool {
	l = strings.TrimSpace(l)
	return len(l) >= 10 && strings.Trim(l, "-") == ""
}

// wingetParseRow reads one row, by the header's column positions, or, when
// the row does not line up (a width winget counted differently), from the
// right: Source, Available, Version ("< 1.2" and "> 1.2" are two words),
// Id are single words, and the rest is the name.
func wingetParseRow(l string, starts []int) (wingetRow, bool) {
	n := len(starts)
	cells, aligned := mgrCutColumns(l, starts)
	if r, ok := wingetRowFrom(cells, n); aligned && ok {
		return r, true
	}
	f := strings.Fields(l)
	if len(f) < n {
		return wingetRow{}, false
	}
	k := len(f) - 1
	cells = make([]string, n)
	if n == 5 {
		cells[4] = f[k]
		k--
	}
	cells[3] = f[k]
	cells[2] = f[k-1]
	k -= 2
	if k >= 1 && (f[k] == "<" || f[k] == ">") {
		cells[2] = f[k] + " " + cells[2]
		k--
	}
	if k < 1 {
		return wingetRow{}, false
	}
	cells[1] = f[k]
	cells[0] = strings.Join(f[:k], " ")
	return wingetRowFrom(cells, n)
}

// wingetRowFrom validates the cells of one row; the checks are what tell
// a row from the prose winget prints around its tables.
func wingetRowFrom(cells []string, n int) (wingetRow, bool) {
	r := wingetRow{Name: cells[0], ID: cells[1], Version: cells[2], Available: cells[3]}
	if n == 5 {
		r.Source = cells[4]
		if !wingetSourceRe.MatchString(r.Source) {
			return wingetRow{}, false
		}
	}
	if r.Name == "" || r.Version == "" || !wingetIDCellRe.MatchString(r.ID) ||
		strings.ContainsAny(r.Available, " \t") || !strings.ContainsAny(r.Available, "0123456789") {
		return wingetRow{}, false
	}
	if s, ok := strings.CutSuffix(r.Name, "…"); ok {
		r.Name, r.NameTruncated = strings.TrimSpace(s), true
	}
	for _, mark := range []string{"…", "..."} {
		if s, ok := strings.CutSuffix(r.ID, mark); ok {
			r.ID, r.IDTruncated = s, true
			break
		}
	}
	return r, r.ID != ""
}

// Package identifiers are Publisher.Package (up to 8 dot-separated parts)
// or a Microsoft Store product id; the rule admits letters, digits and
// ._+- only, which covers both.
var (
	wingetIDRule      = mgrRule{what: "package id", re: regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`), max: 128}
	wingetVersionRule = mgrRule{what: "version", re: regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`), max: 128}
)

func wingetCheckItem(it protocol.InstallItem) error {
	if err := wingetIDRule.check(it.PackageName); err != nil {
		return err
	}
	if it.Version != "" {
		return wingetVersionRule.check(it.Version)
	}
	return nil
}

// wingetInstallArgs is the argv (after "winget") upgrading one package.
// --include-unknown lets winget upgrade a package whose installed version
// it cannot determine; the scan lists those too.
func wingetInstallArgs(id string) []string {
	return []string{"upgrade", "--id", id, "--exact", "--silent", "--accept-package-agreements",
		"--accept-source-agreements", "--disable-interactivity", "--include-unknown"}
}

// Install implements Installer: one `winget upgrade --id <Id> --exact
// --silent …` per package (winget upgrades one package per call), judged by
// winget's exit code.
//
// Dry run: winget has no way to preview an upgrade, so the dry run reports
// the requested changes only, with no extras.
func (w *Winget) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	ok, refused := mgrPartition(protocol.PkgWinget, items, wingetCheckItem)
	res := InstallResult{Results: refused}
	if len(ok) == 0 {
		return res, nil
	}
	if dryRun {
		res.Changes = mgrRequested(protocol.PkgWinget, ok)
		return res, nil
	}
	var out mgrOutput
	done := map[string]protocol.InstallItemResult{}
	for _, it := range ok {
		if prev, seen := done[it.PackageName]; seen {
			prev.UpdateID = it.UpdateID
			res.Results = append(res.Results, prev)
			continue
		}
		args := wingetInstallArgs(it.PackageName)
		run, err := mgrRun(ctx, w.r, w.o.Timeout, "winget", args...)
		out.add(append([]string{"winget"}, args...), run)
		res.Output = out.String()
		if run.ExitCode != 0 && res.ExitCode == 0 {
			res.ExitCode = run.ExitCode
		}
		if err != nil {
			res.Results = append(res.Results, mgrFail(it, "winget upgrade did not finish: "+err.Error()))
			// A cancelled context stops the rest; one stuck installer
			// that timed out does not.
			if ctx.Err() != nil {
				for _, rest := range ok {
					if _, seen := done[rest.PackageName]; !seen && rest.PackageName != it.PackageName {
						done[rest.PackageName] = mgrFail(rest, "not attempted: "+ctx.Err().Error())
						res.Results = append(res.Results, done[rest.PackageName])
					}
				}
				return res, fmt.Errorf("winget upgrade %s: %w", it.PackageName, err)
			}
			done[it.PackageName] = res.Results[len(res.Results)-1]
			continue
		}
		r, reboot := wingetJudge(it, run)
		res.RebootRequired = res.RebootRequired || reboot
		done[it.PackageName] = r
		res.Results = append(res.Results, r)
	}
	return res, nil
}

// wingetJudge turns one winget upgrade's exit code into a result, and
// whether winget says a restart is needed.
func wingetJudge(it protocol.InstallItem, run Result) (protocol.InstallItemResult, bool) {
	reboot := mgrContains(run, "Restart your PC to finish installation")
	switch code := wingetCode(run.ExitCode); code {
	case 0:
		return mgrInstalled(it, it.Version, ""), reboot
	case wingetRebootToFinish, wingetRebootInitiated:
		return mgrInstalled(it, it.Version, "installed; Windows must restart to finish"), true
	case wingetRebootToInstall:
		return mgrFail(it, "not installed: the installer needs Windows restarted first, then try again"), true
	case wingetUpdateNotApplicable:
		return mgrFail(it, "winget found no applicable update (already up to date, or the newer version needs another installer type)"), reboot
	case wingetNoApplicationsFound:
		return mgrFail(it, fmt.Sprintf("winget found no installed package with id %s", it.PackageName)), reboot
	default:
		return mgrFail(it, fmt.Sprintf("winget upgrade exited 0x%08X: %s", code, mgrLastLine(run))), reboot
	}
}
