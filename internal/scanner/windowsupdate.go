package scanner

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// The platform-neutral half of the windows_update scanner: what RedFlag
// reads of a Windows Update Agent (WUA) update and how it becomes an
// Update. windowsupdate_windows.go fills wuUpdate through the WUA COM API;
// tests feed recorded search results (testdata/windowsupdate/).

// wuUpdate is what RedFlag reads of one IUpdate. The JSON names are the
// COM property names, so a search result dumped with PowerShell (see
// testdata/windowsupdate/README.md) is a fixture as it is.
type wuUpdate struct {
	Title                string                 `json:"Title"`
	Identity             wuIdentity             `json:"Identity"`
	KBArticleIDs         []string               `json:"KBArticleIDs"`
	MsrcSeverity         string                 `json:"MsrcSeverity"`
	InstallationBehavior wuInstallationBehavior `json:"InstallationBehavior"`
	MaxDownloadSize      int64                  `json:"MaxDownloadSize"`
	CveIDs               []string               `json:"CveIDs"`
	SecurityBulletinIDs  []string               `json:"SecurityBulletinIDs"`
	Categories           []wuCategory           `json:"Categories"`
	SupportURL           string                 `json:"SupportUrl"`
	EulaAccepted         bool                   `json:"EulaAccepted"`
}

// wuIdentity is IUpdateIdentity: one revision of one update.
type wuIdentity struct {
	UpdateID       string `json:"UpdateID"`
	RevisionNumber int32  `json:"RevisionNumber"`
}

// wuInstallationBehavior is the part of IInstallationBehavior we use.
// RebootBehavior: 0 never reboots, 1 always requires a reboot, 2 can
// request one.
type wuInstallationBehavior struct {
	RebootBehavior int32 `json:"RebootBehavior"`
}

// wuCategory is ICategory. Type is e.g. "Product", "ProductFamily",
// "Company", "UpdateClassification".
type wuCategory struct {
	Name       string `json:"Name"`
	Type       string `json:"Type"`
	CategoryID string `json:"CategoryID"`
}

// Bounds on what one WUA search may hand us.
const (
	maxWUUpdates    = 5000
	maxWUStrings    = 500
	maxWUCategories = 64
)

var (
	guidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	kbRe   = regexp.MustCompile(`^(?i:kb)?([0-9]{1,10})$`)
	cveRe  = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,9}$`)
)

// wuSeverity maps an MSRC severity rating to a SPEC severity. WUA leaves
// it empty for everything MSRC does not rate (feature updates, definition
// updates, most non-security fixes): unknown, never guessed.
func wuSeverity(msrc string) string {
	switch strings.ToLower(strings.TrimSpace(msrc)) {
	case "critical":
		return protocol.SevCritical
	case "important":
		return protocol.SevImportant
	case "moderate":
		return protocol.SevModerate
	case "low":
		return protocol.SevLow
	}
	return protocol.SevUnknown
}

// wuKBs returns the update's KB numbers as "KB1234567", dropping junk.
func wuKBs(u wuUpdate) []string {
	var out []string
	for _, k := range u.KBArticleIDs {
		if m := kbRe.FindStringSubmatch(strings.TrimSpace(k)); m != nil && !slices.Contains(out, "KB"+m[1]) {
			out = append(out, "KB"+m[1])
		}
	}
	return out
}

// wuPackageName is "KB1234567" when the update has a KB article, else
// its update id (lower case).
func wuPackageName(u wuUpdate) (string, error) {
	if kbs := wuKBs(u); len(kbs) > 0 {
		return kbs[0], nil
	}
	if guidRe.MatchString(u.Identity.UpdateID) {
		return strings.ToLower(u.Identity.UpdateID), nil
	}
	return "", fmt.Errorf("windows update %q: no KB article and no valid update id", cleanText(u.Title, 120))
}

// mapWUUpdate turns one WUA update into an Update.
func mapWUUpdate(u wuUpdate) (protocol.Update, error) {
	if !guidRe.MatchString(u.Identity.UpdateID) {
		return protocol.Update{}, fmt.Errorf("windows update %q: bad update id %q", cleanText(u.Title, 120), cleanText(u.Identity.UpdateID, 60))
	}
	if u.Identity.RevisionNumber < 0 {
		return protocol.Update{}, fmt.Errorf("windows update %s: negative revision", u.Identity.UpdateID)
	}
	if u.MaxDownloadSize < 0 {
		return protocol.Update{}, fmt.Errorf("windows update %s: negative size", u.Identity.UpdateID)
	}
	if len(u.KBArticleIDs) > maxWUStrings || len(u.CveIDs) > maxWUStrings || len(u.SecurityBulletinIDs) > maxWUStrings || len(u.Categories) > maxWUCategories {
		return protocol.Update{}, fmt.Errorf("windows update %s: implausibly many KBs, CVEs or categories", u.Identity.UpdateID)
	}
	name, err := wuPackageName(u)
	if err != nil {
		return protocol.Update{}, err
	}
	var cves []string
	for _, c := range u.CveIDs {
		if c = strings.ToUpper(strings.TrimSpace(c)); cveRe.MatchString(c) && !slices.Contains(cves, c) {
			cves = append(cves, c)
		}
	}
	source := "Windows Update"
	var classification string
	var cats []string
	for _, c := range u.Categories {
		switch c.Type {
		case "Product":
			if source == "Windows Update" && c.Name != "" {
				source = c.Name
			}
		case "UpdateClassification":
			if classification == "" {
				classification = c.Name
			}
		}
		if c.Name != "" {
			cats = append(cats, c.Name)
		}
	}
	md := map[string]string{
		"title":       u.Title,
		"update_id":   strings.ToLower(u.Identity.UpdateID),
		"revision":    strconv.Itoa(int(u.Identity.RevisionNumber)),
		"kb_articles": strings.Join(wuKBs(u), ","),
	}
	if classification != "" {
		md["classification"] = classification
	}
	if len(cats) > 0 {
		md["categories"] = strings.Join(cats, ", ")
	}
	if u.MsrcSeverity != "" {
		md["msrc_severity"] = u.MsrcSeverity
	}
	if len(u.SecurityBulletinIDs) > 0 {
		md["security_bulletins"] = strings.Join(u.SecurityBulletinIDs, ",")
	}
	if u.SupportURL != "" {
		md["support_url"] = u.SupportURL
	}
	return protocol.Update{
		PackageType: protocol.PkgWindowsUpdate,
		PackageName: name,
		// An update's version is its revision; nothing of it is installed.
		AvailableVersion: strconv.Itoa(int(u.Identity.RevisionNumber)),
		Severity:         wuSeverity(u.MsrcSeverity),
		Source:           source,
		CVEIDs:           cves,
		SizeBytes:        u.MaxDownloadSize,
		RequiresReboot:   u.InstallationBehavior.RebootBehavior != 0,
		Metadata:         md,
	}, nil
}

// mapWUUpdates maps a search result. Updates that share a KB (the same
// fix for several products) become one Update, as installing the KB
// installs them all: sizes add up, the most urgent severity wins. Bad
// entries are skipped and returned as an error next to the good ones.
func mapWUUpdates(us []wuUpdate) ([]protocol.Update, error) {
	var errs []error
	if len(us) > maxWUUpdates {
		errs = append(errs, fmt.Errorf("windows update: %d updates, only the first %d are reported", len(us), maxWUUpdates))
		us = us[:maxWUUpdates]
	}
	byName := map[string]int{}
	seen := map[string]bool{}
	var out []protocol.Update
	for _, u := range us {
		m, err := mapWUUpdate(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[m.Metadata["update_id"]] {
			continue // the same update listed twice
		}
		seen[m.Metadata["update_id"]] = true
		i, dup := byName[m.PackageName]
		if !dup {
			byName[m.PackageName] = len(out)
			out = append(out, m)
			continue
		}
		o := &out[i]
		if slices.Index(protocol.Severities, m.Severity) < slices.Index(protocol.Severities, o.Severity) {
			o.Severity = m.Severity
		}
		if o.SizeBytes <= math.MaxInt64-m.SizeBytes {
			o.SizeBytes += m.SizeBytes
		}
		o.RequiresReboot = o.RequiresReboot || m.RequiresReboot
		for _, c := range m.CVEIDs {
			if !slices.Contains(o.CVEIDs, c) {
				o.CVEIDs = append(o.CVEIDs, c)
			}
		}
		o.Metadata["update_id"] += "," + m.Metadata["update_id"]
		o.Metadata["title"] += " | " + m.Metadata["title"]
	}
	for i := range out {
		sort.Strings(out[i].CVEIDs)
	}
	return out, errors.Join(errs...)
}

// parseWUAJSON reads a recorded search result: a JSON array of updates
// (or a single object, which is how ConvertTo-Json writes a one-item list).
func parseWUAJSON(b []byte) ([]wuUpdate, error) {
	b = []byte(strings.TrimSpace(strings.TrimPrefix(string(b), "\ufeff")))
	if len(b) > 0 && b[0] == '{' {
		var u wuUpdate
		if err := json.Unmarshal(b, &u); err != nil {
			return nil, fmt.Errorf("windows update JSON: %w", err)
		}
		return []wuUpdate{u}, nil
	}
	var us []wuUpdate
	if err := json.Unmarshal(b, &us); err != nil {
		return nil, fmt.Errorf("windows update JSON: %w", err)
	}
	return us, nil
}

// wuNormalizeName is how an install item's package name is compared with
// an update: "KB1234567" upper case, update ids lower case.
func wuNormalizeName(s string) string {
	s = strings.TrimSpace(s)
	if m := kbRe.FindStringSubmatch(s); m != nil {
		return "KB" + m[1]
	}
	if guidRe.MatchString(s) {
		return strings.ToLower(s)
	}
	return ""
}

// wuSelect finds, for each requested item, the pending updates it names
// (every update carrying the KB, or the one update id). sel[i] holds
// indexes into us for items[i]; an item with none is not pending here.
func wuSelect(us []wuUpdate, items []protocol.InstallItem) [][]int {
	sel := make([][]int, len(items))
	for i, it := range items {
		want := wuNormalizeName(it.PackageName)
		if want == "" {
			continue
		}
		for j, u := range us {
			if slices.Contains(wuKBs(u), want) || strings.EqualFold(u.Identity.UpdateID, want) {
				sel[i] = append(sel[i], j)
			}
		}
	}
	return sel
}

// WUA OperationResultCode values.
const (
	wuNotStarted          = 0
	wuInProgress          = 1
	wuSucceeded           = 2
	wuSucceededWithErrors = 3
	wuFailed              = 4
	wuAborted             = 5
)

// wuResultText names an OperationResultCode.
func wuResultText(code int) string {
	switch code {
	case wuNotStarted:
		return "not started"
	case wuInProgress:
		return "in progress"
	case wuSucceeded:
		return "succeeded"
	case wuSucceededWithErrors:
		return "succeeded with errors"
	case wuFailed:
		return "failed"
	case wuAborted:
		return "aborted"
	}
	return "result code " + strconv.Itoa(code)
}

// wuOpResult is one update's download or install outcome.
type wuOpResult struct {
	// Stage is "download" or "install".
	Stage   string
	Code    int
	HResult int32
}

func (r wuOpResult) String() string {
	s := wuResultText(r.Code)
	if r.Stage != "" {
		s = r.Stage + " " + s
	}
	if r.HResult != 0 {
		s += fmt.Sprintf(" (HRESULT 0x%08X)", uint32(r.HResult))
	}
	return s
}

// wuItemResults turns per-update install outcomes (indexed like us) into
// per-item results: an item is installed when every update it named was.
func wuItemResults(us []wuUpdate, items []protocol.InstallItem, sel [][]int, results map[int]wuOpResult) []protocol.InstallItemResult {
	out := make([]protocol.InstallItemResult, 0, len(items))
	for i, it := range items {
		r := protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "installed"}
		if len(sel[i]) == 0 {
			out = append(out, wuMissing(items[i:i+1], sel[i:i+1])...)
			continue
		}
		var msgs, revs []string
		for _, j := range sel[i] {
			res, ok := results[j]
			if !ok {
				res = wuOpResult{Code: wuNotStarted}
			}
			if res.Code != wuSucceeded {
				r.Status = "failed"
			}
			msgs = append(msgs, fmt.Sprintf("%s: %s", cleanText(us[j].Title, 200), res))
			revs = append(revs, strconv.Itoa(int(us[j].Identity.RevisionNumber)))
		}
		if r.Status == "installed" {
			r.InstalledVersion = strings.Join(revs, ",")
		}
		r.Message = strings.Join(msgs, "; ")
		out = append(out, r)
	}
	return out
}

// wuToInstall lists the distinct updates the items selected, in order.
func wuToInstall(sel [][]int) []int {
	var out []int
	for _, js := range sel {
		for _, j := range js {
			if !slices.Contains(out, j) {
				out = append(out, j)
			}
		}
	}
	return out
}

// wuChanges lists the updates the items selected as changes (a dry run's
// answer, and an install's record); WUA resolves no dependencies we could
// show, so there are never extras.
func wuChanges(us []wuUpdate, sel [][]int, installed map[int]wuOpResult) []protocol.PackageChange {
	var out []protocol.PackageChange
	for _, j := range wuToInstall(sel) {
		if installed != nil && installed[j].Code != wuSucceeded {
			continue
		}
		name, err := wuPackageName(us[j])
		if err != nil {
			continue
		}
		out = append(out, protocol.PackageChange{PackageType: protocol.PkgWindowsUpdate, PackageName: name,
			Action: "upgrade", ToVersion: strconv.Itoa(int(us[j].Identity.RevisionNumber))})
	}
	return out
}

// wuMissing returns failed results for the items that name no pending update.
func wuMissing(items []protocol.InstallItem, sel [][]int) []protocol.InstallItemResult {
	var out []protocol.InstallItemResult
	for i, it := range items {
		if len(sel[i]) == 0 {
			out = append(out, protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed",
				Message: cleanText(it.PackageName, 100) + ": not a pending update on this machine (installed, hidden or superseded since the scan)"})
		}
	}
	return out
}

// decodeDecimal reads a 16-byte OLE DECIMAL (how WUA types
// MaxDownloadSize): reserved(2) scale(1) sign(1) hi32(4) lo64(8), little
// endian. Sizes fit an int64; anything else is an error.
func decodeDecimal(b [16]byte) (int64, error) {
	scale, sign := b[2], b[3]
	hi := binary.LittleEndian.Uint32(b[4:8])
	lo := binary.LittleEndian.Uint64(b[8:16])
	if scale > 28 {
		return 0, fmt.Errorf("DECIMAL scale %d out of range", scale)
	}
	if hi != 0 || lo > math.MaxInt64 {
		return 0, errors.New("DECIMAL value does not fit in 64 bits")
	}
	v := int64(lo)
	for range scale {
		v /= 10
	}
	if sign&0x80 != 0 {
		v = -v
	}
	return v, nil
}

// WindowsUpdate (defined per platform) scans and installs through the
// Windows Update Agent: software updates offered by Windows Update,
// Microsoft Update or the WSUS server the machine is configured for.
// Severity is MSRC's rating. NewWindowsUpdate(r, o) builds it; the Runner
// is not used (WUA is a COM API, not a command).

// Name implements Scanner and Installer.
func (w *WindowsUpdate) Name() string { return protocol.PkgWindowsUpdate }
