package scanner

// Snap scans and installs snap refreshes.
//
// `snap refresh --list` prints a table (text/tabwriter, columns padded to
// the widest cell) of the snaps with a newer revision in the channel they
// track, or "All snaps up to date." on stderr. Its columns changed across
// snapd versions: 2.2x printed "Name Version Rev Developer Notes", later
// releases "Name Version Rev Size Publisher Notes" (the publisher marked
// "✓"/"✪", or "**"/"*" without a UTF-8 terminal). Columns are located
// by the header's positions and read by name, so both parse. The installed
// version and the tracked channel come from `snap list`, the same kind of
// table.
//
// The Snap Store publishes no severities: every update is "unknown".

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Snap is the snap scanner and installer.
type Snap struct {
	r Runner
	o Options
}

var _ interface {
	Scanner
	Installer
} = (*Snap)(nil)

// NewSnap returns the snap scanner and installer.
func NewSnap(r Runner, o Options) *Snap { return &Snap{r: r, o: o} }

// Name implements Scanner and Installer.
func (s *Snap) Name() string { return protocol.PkgSnap }

// Available implements Scanner.
func (s *Snap) Available(context.Context) bool {
	_, err := s.r.LookPath("snap")
	return err == nil
}

// Scan implements Scanner.
func (s *Snap) Scan(ctx context.Context) ([]protocol.Update, error) {
	if !s.Available(ctx) {
		return nil, ErrUnavailable
	}
	res, err := s.r.Run(ctx, "snap", "refresh", "--list")
	if err != nil {
		return nil, fmt.Errorf("running snap refresh --list: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("snap refresh --list exited %d: %s", res.ExitCode, mgrLastLine(res))
	}
	pending, err := parseSnapTable(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("snap refresh --list: %w", err)
	}
	if len(pending) == 0 {
		return nil, nil
	}
	lres, err := s.r.Run(ctx, "snap", "list")
	if err != nil {
		return nil, fmt.Errorf("running snap list: %w", err)
	}
	if lres.ExitCode != 0 {
		return nil, fmt.Errorf("snap list exited %d: %s", lres.ExitCode, mgrLastLine(lres))
	}
	installedRows, err := parseSnapTable(lres.Stdout)
	if err != nil {
		return nil, fmt.Errorf("snap list: %w", err)
	}
	installed := map[string]map[string]string{}
	for _, row := range installedRows {
		installed[row["Name"]] = row
	}
	ups := make([]protocol.Update, 0, len(pending))
	for _, row := range pending {
		name := row["Name"]
		if name == "" {
			continue
		}
		md := map[string]string{}
		for _, k := range []string{"Rev", "Size", "Publisher", "Developer", "Notes"} {
			if v := row[k]; v != "" {
				md[strings.ToLower(k)] = v
			}
		}
		u := protocol.Update{PackageType: protocol.PkgSnap, PackageName: name, AvailableVersion: row["Version"],
			Severity: protocol.SevUnknown, CVEIDs: []string{}, SizeBytes: snapSize(row["Size"]), Metadata: md}
		if in, ok := installed[name]; ok {
			u.CurrentVersion = in["Version"]
			u.Source = in["Tracking"]
			if in["Rev"] != "" {
				md["installed_rev"] = in["Rev"]
			}
		}
		ups = append(ups, u)
	}
	return ups, nil
}

// parseSnapTable parses a snapd table (snap refresh --list, snap list)
// into rows keyed by the header's column names. Columns are cut at the
// header's word positions; a row that does not line up (colour codes were
// stripped, say) is split on whitespace instead when it has one field per
// column, since no snap field contains spaces, and skipped otherwise.
// Output without a table ("All snaps up to date.") has no rows; a first
// line that is neither is an error.
func parseSnapTable(out []byte) ([]map[string]string, error) {
	lines := mgrLines(out)
	i := 0
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	if i == len(lines) {
		return nil, nil
	}
	header := strings.TrimRight(lines[i], " \t")
	if strings.Contains(header, "up to date") {
		return nil, nil
	}
	names, starts := mgrHeaderColumns(header)
	if len(names) < 3 || names[0] != "Name" || names[1] != "Version" {
		return nil, fmt.Errorf("unrecognised table header %s", mgrQuote(header, mgrQuoteMax))
	}
	var rows []map[string]string
	skipped := 0
	for _, l := range lines[i+1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		cells, aligned := mgrCutColumns(l, starts)
		if !aligned || cells[0] == "" || strings.ContainsAny(cells[0], " \t") {
			f := strings.Fields(l)
			if len(f) != len(names) {
				skipped++
				continue
			}
			cells = f
		}
		if len(rows) >= MaxUpdates {
			break
		}
		row := make(map[string]string, len(names))
		for j, n := range names {
			row[n] = cells[j]
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 && skipped > 0 {
		return nil, fmt.Errorf("%d table rows, none lined up with the header %s", skipped, mgrQuote(header, mgrQuoteMax))
	}
	return rows, nil
}

var snapSizeRe = regexp.MustCompile(`^([0-9]{1,15})(B|kB|MB|GB|TB)$`)

// snapSize reads snapd's download size ("81MB": an integer in decimal
// units, rounded down) as bytes; 0 when unknown.
func snapSize(s string) int64 {
	m := snapSizeRe.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0
	}
	mult := map[string]int64{"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[m[2]]
	return n * mult
}

// Snap names: lowercase letters, digits and single hyphens, optionally an
// instance key (name_key) for parallel installs. Versions: at most 32
// printable characters without spaces (we allow the usual punctuation).
var (
	snapNameRule    = mgrRule{what: "snap name", re: regexp.MustCompile(`^[a-z0-9](-?[a-z0-9])*(_[a-z0-9]{1,10})?$`), max: 64}
	snapVersionRule = mgrRule{what: "version", re: regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:.+~_-]*$`), max: 128}
)

func snapCheckItem(it protocol.InstallItem) error {
	if err := snapNameRule.check(it.PackageName); err != nil {
		return err
	}
	if it.Version != "" {
		return snapVersionRule.check(it.Version)
	}
	return nil
}

// Install implements Installer: `snap refresh name…` refreshes each snap
// to the newest revision of the channel it tracks.
//
// Dry run: snapd has no way to preview a refresh (no --dry-run), so the
// dry run reports the requested changes only, with no extras (a refresh
// may also pull in a base snap such as core22; snapd decides that itself).
func (s *Snap) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	ok, refused := mgrPartition(protocol.PkgSnap, items, snapCheckItem)
	res := InstallResult{Results: refused}
	if len(ok) == 0 {
		return res, nil
	}
	if dryRun {
		res.Changes = mgrRequested(protocol.PkgSnap, ok)
		return res, nil
	}
	names := mgrNames(ok)
	args := append([]string{"refresh"}, names...)
	var out mgrOutput
	run, err := mgrRun(ctx, s.r, s.o.Timeout, "snap", args...)
	out.add(append([]string{"snap"}, args...), run)
	res.Output, res.ExitCode = out.String(), run.ExitCode
	if err != nil {
		res.Results = append(res.Results, mgrFailAll(ok, "snap refresh did not finish: "+err.Error())...)
		return res, fmt.Errorf("running snap refresh: %w", err)
	}
	// snapd logs this when a refreshed kernel, base or gadget needs the
	// machine restarted before it takes effect.
	res.RebootRequired = mgrContains(run, "system restart")
	refreshed := parseSnapRefreshed(run.Stdout)
	var current map[string]string
	for _, it := range ok {
		if v, done := refreshed[it.PackageName]; done {
			res.Results = append(res.Results, mgrInstalled(it, v, ""))
			continue
		}
		if run.ExitCode != 0 {
			res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("snap refresh exited %d: %s", run.ExitCode, mgrLastLine(run))))
			continue
		}
		// Not refreshed, no error: already at the newest revision
		// (snapd auto-refreshes several times a day). Installed if that
		// is the requested version.
		if current == nil {
			current = s.installedVersions(ctx, names)
		}
		if v := current[it.PackageName]; v != "" && v == it.Version {
			res.Results = append(res.Results, mgrInstalled(it, v, "already at this version (snapd may have refreshed it on its own)"))
			continue
		}
		now := current[it.PackageName]
		if now == "" {
			now = "an unknown version"
		}
		res.Results = append(res.Results, mgrFail(it, fmt.Sprintf("snap did not refresh %s: it is still at %s (no newer revision "+
			"in the channel it tracks, or the refresh is held)", it.PackageName, now)))
	}
	return res, nil
}

// installedVersions asks `snap list name…` for installed versions; empty
// on failure (the caller then reports the refresh as not done).
func (s *Snap) installedVersions(ctx context.Context, names []string) map[string]string {
	out := map[string]string{}
	lres, err := mgrRun(ctx, s.r, s.o.Timeout, "snap", append([]string{"list"}, names...)...)
	if err != nil {
		return out
	}
	rows, _ := parseSnapTable(lres.Stdout)
	for _, row := range rows {
		out[row["Name"]] = row["Version"]
	}
	return out
}

// snapRefreshedRe matches snapd's report of one refreshed snap:
// "name (channel) version from publisher refreshed", where the channel is
// shown only when it is not stable and the publisher only when known
// (older snapd quoted it: "from 'canonical'").
var snapRefreshedRe = regexp.MustCompile(`^([a-z0-9][a-z0-9_-]*)(?: \([^)]*\))? (\S+)(?: from .+)? refreshed$`)

// parseSnapRefreshed returns name → version of the snaps a `snap refresh`
// reports as refreshed.
func parseSnapRefreshed(out []byte) map[string]string {
	m := map[string]string{}
	for _, l := range mgrLines(out) {
		if s := snapRefreshedRe.FindStringSubmatch(strings.TrimSpace(l)); s != nil && len(m) < MaxUpdates {
			m[s[1]] = s[2]
		}
	}
	return m
}
