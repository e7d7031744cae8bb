package scanner

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func loadWUFixture(t testing.TB, name string) []wuUpdate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windowsupdate", name))
	if err != nil {
		t.Fatal(err)
	}
	us, err := parseWUAJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return us
}

func TestWindowsUpdateRecordedSearch(t *testing.T) {
	ups, err := mapWUUpdates(loadWUFixture(t, "search-win10-22h2.json"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]protocol.Update{}
	for _, u := range ups {
		byName[u.PackageName] = u
	}
	tests := []struct {
		name     string
		severity string
		reboot   bool
		size     int64
		cves     []string
		source   string
		class    string
		version  string
	}{
		{"KB5034122", protocol.SevCritical, true, 713031680, []string{"CVE-2024-20653", "CVE-2024-20674", "CVE-2024-20683", "CVE-2024-20700"}, "Windows 10, version 1903 and later", "Security Updates", "1"},
		{"KB5034441", protocol.SevImportant, true, 264241152, []string{"CVE-2024-20666"}, "Windows 10, version 1903 and later", "Security Updates", "200"},
		{"KB5034275", protocol.SevImportant, true, 73400320, []string{"CVE-2024-0056", "CVE-2024-0057", "CVE-2024-21312"}, "Windows 10, version 1903 and later", "Security Updates", "1"},
		{"KB2267602", protocol.SevUnknown, false, 131596288, nil, "Microsoft Defender Antivirus", "Definition Updates", "200"},
		{"KB890830", protocol.SevUnknown, false, 77594624, nil, "Windows 10, version 1903 and later", "Update Rollups", "200"},
		// No KB article: the update id names it, lower case.
		{"e7d4b0f2-8c1a-4b6e-9d3f-2a5c7e9b1d04", protocol.SevUnknown, false, 167772160, nil, "Microsoft Edge", "Updates", "1"},
	}
	if len(ups) != len(tests) {
		t.Fatalf("got %d updates, want %d: %+v", len(ups), len(tests), ups)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := byName[tt.name]
			if !ok {
				t.Fatalf("no update %s", tt.name)
			}
			if u.PackageType != protocol.PkgWindowsUpdate || u.Severity != tt.severity || u.RequiresReboot != tt.reboot ||
				u.SizeBytes != tt.size || u.Source != tt.source || u.AvailableVersion != tt.version || u.CurrentVersion != "" {
				t.Errorf("got %+v", u)
			}
			if !slices.Equal(u.CVEIDs, tt.cves) {
				t.Errorf("cves %v, want %v", u.CVEIDs, tt.cves)
			}
			if u.Metadata["classification"] != tt.class || u.Metadata["title"] == "" || !guidRe.MatchString(u.Metadata["update_id"]) {
				t.Errorf("metadata %v", u.Metadata)
			}
		})
	}
}

// TestWindowsUpdateGolden pins the whole report, as Clean sends it.
func TestWindowsUpdateGolden(t *testing.T) {
	ups, err := mapWUUpdates(loadWUFixture(t, "search-win10-22h2.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(Clean(protocol.PkgWindowsUpdate, ups), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "windowsupdate", "search.golden.json")
	if os.Getenv("REDFLAG_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (REDFLAG_UPDATE_GOLDEN=1 writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report differs from %s:\n%s", golden, got)
	}
}

func TestWindowsUpdateSingleObject(t *testing.T) {
	us := loadWUFixture(t, "search-single.json") // BOM + one object, as PowerShell writes it
	ups, err := mapWUUpdates(us)
	if err != nil || len(ups) != 1 || ups[0].PackageName != "KB5034441" || ups[0].Severity != protocol.SevImportant {
		t.Fatalf("got %+v, %v", ups, err)
	}
}

func TestWUSeverity(t *testing.T) {
	tests := map[string]string{
		"Critical": protocol.SevCritical, "Important": protocol.SevImportant, "Moderate": protocol.SevModerate,
		"Low": protocol.SevLow, "": protocol.SevUnknown, " critical ": protocol.SevCritical,
		"Unspecified": protocol.SevUnknown, "Severe": protocol.SevUnknown,
	}
	for in, want := range tests {
		if got := wuSeverity(in); got != want {
			t.Errorf("wuSeverity(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWUPackageName(t *testing.T) {
	id := wuIdentity{UpdateID: "5D1D9B2A-7C5E-4B0E-9F3A-3C2B8E4F1A10", RevisionNumber: 1}
	tests := []struct {
		name string
		kbs  []string
		id   wuIdentity
		want string
		err  bool
	}{
		{"kb digits", []string{"5034441"}, id, "KB5034441", false},
		{"kb prefixed", []string{"KB5034441"}, id, "KB5034441", false},
		{"kb lower prefix", []string{"kb890830"}, id, "KB890830", false},
		{"first valid kb", []string{"junk", "", "2267602"}, id, "KB2267602", false},
		{"no kb", nil, id, "5d1d9b2a-7c5e-4b0e-9f3a-3c2b8e4f1a10", false},
		{"junk kb falls back", []string{"KB12a"}, id, "5d1d9b2a-7c5e-4b0e-9f3a-3c2b8e4f1a10", false},
		{"nothing usable", nil, wuIdentity{UpdateID: "not-a-guid"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wuPackageName(wuUpdate{KBArticleIDs: tt.kbs, Identity: tt.id})
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("got %q, %v; want %q (err %v)", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestMapWUUpdatesMergesSharedKB(t *testing.T) {
	a := wuUpdate{Title: "A (KB5000001)", Identity: wuIdentity{UpdateID: "11111111-1111-1111-1111-111111111111", RevisionNumber: 1},
		KBArticleIDs: []string{"5000001"}, MsrcSeverity: "Moderate", MaxDownloadSize: 10, CveIDs: []string{"CVE-2024-0001"}}
	b := wuUpdate{Title: "B (KB5000001)", Identity: wuIdentity{UpdateID: "22222222-2222-2222-2222-222222222222", RevisionNumber: 3},
		KBArticleIDs: []string{"5000001"}, MsrcSeverity: "Critical", MaxDownloadSize: 5, CveIDs: []string{"CVE-2024-0002", "cve-2024-0001"},
		InstallationBehavior: wuInstallationBehavior{RebootBehavior: 2}}
	ups, err := mapWUUpdates([]wuUpdate{a, b, a})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 {
		t.Fatalf("got %d updates", len(ups))
	}
	u := ups[0]
	if u.Severity != protocol.SevCritical || u.SizeBytes != 15 || !u.RequiresReboot ||
		!slices.Equal(u.CVEIDs, []string{"CVE-2024-0001", "CVE-2024-0002"}) ||
		u.Metadata["update_id"] != a.Identity.UpdateID+","+b.Identity.UpdateID {
		t.Errorf("merged: %+v", u)
	}
}

func TestMapWUUpdatesHostile(t *testing.T) {
	good := loadWUFixture(t, "search-win10-22h2.json")[0]
	bad := []wuUpdate{
		{Title: "no id"},
		{Title: "bad id", Identity: wuIdentity{UpdateID: "../../etc"}, KBArticleIDs: []string{"1"}},
		{Title: "neg rev", Identity: wuIdentity{UpdateID: good.Identity.UpdateID, RevisionNumber: -1}},
		{Title: "neg size", Identity: wuIdentity{UpdateID: good.Identity.UpdateID}, MaxDownloadSize: -5},
		{Title: "many cves", Identity: wuIdentity{UpdateID: good.Identity.UpdateID}, CveIDs: make([]string, maxWUStrings+1)},
	}
	ups, err := mapWUUpdates(append(bad, good))
	if err == nil {
		t.Fatal("no error for bad updates")
	}
	if len(ups) != 1 || ups[0].PackageName != "KB5034122" {
		t.Errorf("good update lost: %+v", ups)
	}
	many := make([]wuUpdate, maxWUUpdates+3)
	for i := range many {
		many[i] = good
	}
	if _, err := mapWUUpdates(many); err == nil || !strings.Contains(err.Error(), "only the first") {
		t.Errorf("no error for too many updates: %v", err)
	}
}

func TestWUSelectAndResults(t *testing.T) {
	us := loadWUFixture(t, "search-win10-22h2.json")
	items := []protocol.InstallItem{
		{UpdateID: "u1", PackageName: "KB5034441"},
		{UpdateID: "u2", PackageName: "kb2267602"},
		{UpdateID: "u3", PackageName: "E7D4B0F2-8C1A-4B6E-9D3F-2A5C7E9B1D04"},
		{UpdateID: "u4", PackageName: "KB9999999"},
		{UpdateID: "u5", PackageName: "IsInstalled=1 or 1=1"},
		{UpdateID: "u6", PackageName: "KB5034441"}, // asked twice: installed once
	}
	sel := wuSelect(us, items)
	want := [][]int{{1}, {3}, {5}, nil, nil, {1}}
	for i := range want {
		if !slices.Equal(sel[i], want[i]) {
			t.Errorf("item %d selects %v, want %v", i, sel[i], want[i])
		}
	}
	if got := wuToInstall(sel); !slices.Equal(got, []int{1, 3, 5}) {
		t.Errorf("to install %v", got)
	}
	dry := wuChanges(us, sel, nil)
	if len(dry) != 3 || dry[0].PackageName != "KB5034441" || dry[0].ToVersion != "200" || dry[0].Action != "upgrade" {
		t.Errorf("dry run changes %+v", dry)
	}
	if m := wuMissing(items, sel); len(m) != 2 || m[0].UpdateID != "u4" || m[1].UpdateID != "u5" {
		t.Errorf("missing %+v", m)
	}

	results := map[int]wuOpResult{
		1: {Stage: "install", Code: wuSucceeded},
		3: {Stage: "download", Code: wuFailed, HResult: -2145124329}, // 0x80240017
	}
	rs := wuItemResults(us, items, sel, results)
	if rs[0].Status != "installed" || rs[0].InstalledVersion != "200" || rs[5].Status != "installed" {
		t.Errorf("KB5034441: %+v", rs[0])
	}
	if rs[1].Status != "failed" || !strings.Contains(rs[1].Message, "download failed (HRESULT 0x80240017)") {
		t.Errorf("KB2267602: %+v", rs[1])
	}
	if rs[2].Status != "failed" || !strings.Contains(rs[2].Message, "not started") {
		t.Errorf("edge: %+v", rs[2])
	}
	if rs[3].Status != "failed" || !strings.Contains(rs[3].Message, "not a pending update") {
		t.Errorf("missing: %+v", rs[3])
	}
	if ch := wuChanges(us, sel, results); len(ch) != 1 || ch[0].PackageName != "KB5034441" {
		t.Errorf("changes after install %+v", ch)
	}
}

func TestWUResultText(t *testing.T) {
	for code, want := range map[int]string{0: "not started", 1: "in progress", 2: "succeeded", 3: "succeeded with errors", 4: "failed", 5: "aborted", 9: "result code 9"} {
		if got := wuResultText(code); got != want {
			t.Errorf("%d: %q", code, got)
		}
	}
}

func decimalBytes(scale, sign byte, hi uint32, lo uint64) [16]byte {
	var b [16]byte
	binary.LittleEndian.PutUint16(b[0:2], 0x000e) // VT_DECIMAL, where a VARIANT keeps it
	b[2], b[3] = scale, sign
	binary.LittleEndian.PutUint32(b[4:8], hi)
	binary.LittleEndian.PutUint64(b[8:16], lo)
	return b
}

func TestDecodeDecimal(t *testing.T) {
	tests := []struct {
		name string
		in   [16]byte
		want int64
		err  bool
	}{
		{"size", decimalBytes(0, 0, 0, 713031680), 713031680, false},
		{"zero", decimalBytes(0, 0, 0, 0), 0, false},
		{"scaled", decimalBytes(2, 0, 0, 12345), 123, false},
		{"negative", decimalBytes(0, 0x80, 0, 7), -7, false},
		{"hi bits", decimalBytes(0, 0, 1, 0), 0, true},
		{"over int64", decimalBytes(0, 0, 0, 1<<63), 0, true},
		{"bad scale", decimalBytes(29, 0, 0, 1), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeDecimal(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("got %d, %v", got, err)
			}
		})
	}
}

// Off Windows the scanner is never available and never runs anything.
func TestWindowsUpdateOffWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has the real WUA")
	}
	w := NewWindowsUpdate(&Fake{}, Options{})
	if w.Name() != protocol.PkgWindowsUpdate || w.Available(context.Background()) {
		t.Fatal("available off Windows")
	}
	if _, err := w.Scan(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("scan: %v", err)
	}
	if _, err := w.Install(context.Background(), nil, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("install: %v", err)
	}
	var _ Scanner = w
	var _ Installer = w
}

func FuzzWindowsUpdateMap(f *testing.F) {
	for _, name := range []string{"search-win10-22h2.json", "search-single.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "windowsupdate", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"Identity":{"UpdateID":"5d1d9b2a-7c5e-4b0e-9f3a-3c2b8e4f1a10","RevisionNumber":-1},"MaxDownloadSize":-1}]`))
	f.Add([]byte(`{"KBArticleIDs":["KB"],"CveIDs":["CVE-1-1"]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		us, err := parseWUAJSON(b)
		if err != nil {
			return
		}
		ups, _ := mapWUUpdates(us)
		for _, u := range ups {
			if u.PackageName == "" || u.PackageType != protocol.PkgWindowsUpdate || !slices.Contains(protocol.Severities, u.Severity) || u.SizeBytes < 0 {
				t.Fatalf("bad update %+v", u)
			}
			if wuNormalizeName(u.PackageName) != u.PackageName {
				t.Fatalf("package name %q does not select itself", u.PackageName)
			}
		}
		sel := wuSelect(us, []protocol.InstallItem{{PackageName: "KB5034441"}})
		_ = wuItemResults(us, []protocol.InstallItem{{PackageName: "KB5034441"}}, sel, map[int]wuOpResult{})
		var d [16]byte
		copy(d[:], b)
		_, _ = decodeDecimal(d)
	})
}
