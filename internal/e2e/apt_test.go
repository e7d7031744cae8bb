package e2e_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
)

// aptPkg is the throwaway package the APT test builds, installs and
// upgrades. The name is unique enough never to collide with a real one.
const aptPkg = "redflag-e2e-dummy"

// TestAPTEndToEnd is the real loop on a real package manager: two versions
// of a throwaway .deb in a local file repository, version 1 installed,
// version 2 published; the real agent reports the update, an admin
// approves it through the API, the agent installs it, dpkg shows version
// 2, the server shows the update installed and the command succeeded.
//
// It needs root on a Debian-like machine (it installs a package). CI is
// one; elsewhere it skips and says why (in CI a missing prerequisite fails).
func TestAPTEndToEnd(t *testing.T) {
	if reason := aptPrereqs(); reason != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("the APT end-to-end test cannot run in CI: %s", reason)
		}
		t.Skipf("skipping the APT end-to-end test: %s", reason)
	}
	// The test changes the machine's package state; run it on one engine
	// only (SQLite: the store is not what it tests).
	e := storetest.Engine("sqlite")
	work, err := os.MkdirTemp("", "redflag-e2e-apt-")
	if err != nil {
		t.Fatal(err)
	}
	// apt fetches as its unprivileged _apt user: the repository must be
	// world-readable (MkdirTemp makes 0700).
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(work, "repo")
	listFile := "/etc/apt/sources.list.d/" + aptPkg + ".list"
	// Cleanup runs even when the test fails: purge the package, remove the
	// source and its downloaded lists, remove the files.
	t.Cleanup(func() {
		for _, c := range [][]string{{"dpkg", "--purge", aptPkg}} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Logf("cleanup: %s: %v\n%s", strings.Join(c, " "), err, out)
			}
		}
		os.Remove(listFile)
		removeAptLists(t, repo)
		os.RemoveAll(work)
	})

	arch := dpkgArch(t)
	deb1 := buildDeb(t, work, "1.0-1", arch)
	deb2 := buildDeb(t, work, "2.0-1", arch)
	mustCmd(t, "dpkg", "-i", deb1)
	if v := installedVersion(t); v != "1.0-1" {
		t.Fatalf("after dpkg -i version 1, dpkg-query says %q", v)
	}
	publish(t, repo, deb2)
	if err := os.WriteFile(listFile, []byte("deb [trusted=yes] file:"+repo+" ./\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Refresh only this source: the test must not depend on (or touch) the
	// machine's other repositories.
	mustCmd(t, "apt-get", "update", "-o", "Dir::Etc::sourcelist="+listFile, "-o", "Dir::Etc::sourceparts=-",
		"-o", "APT::Get::List-Cleanup=0")

	s := startServer(t, e)
	a := registerAgent(t, s.url, s.registrationToken(t, 1))
	limitScanners(t, a.config, "apt")
	ap := a.run(t)

	// Scan now rather than wait for the schedule.
	scan := s.queue(t, a.id, protocol.CmdScanUpdates)
	if c := s.waitFinished(t, scan.ID, 3*time.Minute, s.p, ap); c.Status != protocol.StateSucceeded {
		t.Fatalf("scan_updates ended %s: %+v", c.Status, c.Result)
	}
	u := findUpdate(t, s, a.id)
	if u.CurrentVersion != "1.0-1" || u.AvailableVersion != "2.0-1" || u.PackageType != "apt" || u.Status != "pending" {
		t.Fatalf("the server shows the update as %+v; want apt 1.0-1 → 2.0-1, pending", u)
	}

	s.call(t, "POST", "/api/v1/updates/approve", map[string]any{"update_ids": []string{u.ID}}, http.StatusOK, nil)
	var install commandRecord
	waitFor(t, time.Minute, "the install command to be queued", []*proc{s.p, ap}, func(why *string) bool {
		var list struct {
			Items []commandRecord `json:"items"`
		}
		s.call(t, "GET", "/api/v1/commands?agent_id="+url.QueryEscape(a.id)+"&type="+protocol.CmdInstallUpdates, nil, http.StatusOK, &list)
		for _, c := range list.Items {
			if c.Type == protocol.CmdInstallUpdates {
				install = c
				return true
			}
		}
		*why = fmt.Sprintf("%d commands", len(list.Items))
		return false
	})
	c := s.waitFinished(t, install.ID, 5*time.Minute, s.p, ap)
	if c.Status != protocol.StateSucceeded {
		t.Fatalf("install_updates ended %s: %+v", c.Status, c.Result)
	}
	if v := installedVersion(t); v != "2.0-1" {
		t.Fatalf("after the install dpkg-query says %q, want 2.0-1", v)
	}
	waitFor(t, 30*time.Second, "the update to show installed", []*proc{s.p, ap}, func(why *string) bool {
		got := getUpdate(t, s, u.ID)
		*why = "status " + got.Status
		return got.Status == "installed"
	})
}

// aptPrereqs says why the APT test cannot run here ("" when it can).
func aptPrereqs() string {
	if runtime.GOOS != "linux" {
		return "it needs Linux (this is " + runtime.GOOS + ")"
	}
	if os.Geteuid() != 0 {
		return "it installs a package and must run as root"
	}
	for _, tool := range []string{"dpkg-deb", "dpkg", "apt-get", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed (not a Debian-like system)"
		}
	}
	return ""
}

func mustCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(childEnv(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func dpkgArch(t *testing.T) string {
	return strings.TrimSpace(mustCmd(t, "dpkg", "--print-architecture"))
}

func installedVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", aptPkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// buildDeb builds the throwaway package at version v with dpkg-deb.
func buildDeb(t *testing.T, work, v, arch string) string {
	t.Helper()
	root := filepath.Join(work, "build-"+v)
	for _, d := range []string{"DEBIAN", "usr/share/" + aptPkg} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: RedFlag tests <tests@redflag.invalid>\n"+
		"Section: misc\nPriority: optional\nDescription: RedFlag end-to-end test package\n Installed and removed by RedFlag's APT test.\n", aptPkg, v, arch)
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/share", aptPkg, "version"), []byte(v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(work, fmt.Sprintf("%s_%s_%s.deb", aptPkg, v, arch))
	mustCmd(t, "dpkg-deb", "--root-owner-group", "--build", root, deb)
	return deb
}

// publish writes a flat repository holding deb: the .deb, a Packages index
// built from its control data, and a Release file with the index's hashes.
func publish(t *testing.T, repo, deb string) {
	t.Helper()
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(deb)
	if err := os.WriteFile(filepath.Join(repo, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	control := strings.TrimRight(mustCmd(t, "dpkg-deb", "--field", deb), "\n")
	md := md5.Sum(b)
	sh := sha256.Sum256(b)
	pkgs := fmt.Sprintf("%s\nFilename: ./%s\nSize: %d\nMD5sum: %s\nSHA256: %s\n\n", control, name, len(b),
		hex.EncodeToString(md[:]), hex.EncodeToString(sh[:]))
	if err := os.WriteFile(filepath.Join(repo, "Packages"), []byte(pkgs), 0o644); err != nil {
		t.Fatal(err)
	}
	ps := sha256.Sum256([]byte(pkgs))
	release := fmt.Sprintf("Origin: RedFlag tests\nLabel: RedFlag tests\nSuite: redflag-e2e\nCodename: redflag-e2e\nDate: %s\n"+
		"SHA256:\n %s %d Packages\n", time.Now().UTC().Format(time.RFC1123Z), hex.EncodeToString(ps[:]), len(pkgs))
	if err := os.WriteFile(filepath.Join(repo, "Release"), []byte(release), 0o644); err != nil {
		t.Fatal(err)
	}
}

// removeAptLists deletes the lists apt keeps for the test's repository
// (named after its path) and nothing else.
func removeAptLists(t *testing.T, repo string) {
	prefix := strings.ReplaceAll(strings.TrimPrefix(repo, "/"), "/", "_")
	matches, _ := filepath.Glob(filepath.Join("/var/lib/apt/lists", "*"+prefix+"*"))
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
}

// limitScanners rewrites the agent config so only the named scanners run.
func limitScanners(t *testing.T, path string, names ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["scanners"] = map[string]any{"enabled": names}
	b, err = json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

type updateRecord struct {
	ID               string `json:"id"`
	AgentID          string `json:"agent_id"`
	PackageType      string `json:"package_type"`
	PackageName      string `json:"package_name"`
	CurrentVersion   string `json:"current_version"`
	AvailableVersion string `json:"available_version"`
	Severity         string `json:"severity"`
	Status           string `json:"status"`
}

func findUpdate(t *testing.T, s *server, agentID string) updateRecord {
	t.Helper()
	var list struct {
		Items []updateRecord `json:"items"`
	}
	s.call(t, "GET", "/api/v1/updates?agent_id="+url.QueryEscape(agentID)+"&package_type=apt&q="+aptPkg, nil, http.StatusOK, &list)
	for _, u := range list.Items {
		if u.PackageName == aptPkg {
			return u
		}
	}
	t.Fatalf("the server lists no %s update for the agent: %+v", aptPkg, list.Items)
	return updateRecord{}
}

func getUpdate(t *testing.T, s *server, id string) updateRecord {
	t.Helper()
	var u updateRecord
	s.call(t, "GET", "/api/v1/updates/"+id, nil, http.StatusOK, &u)
	return u
}
