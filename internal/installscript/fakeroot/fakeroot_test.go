// Package fakeroot_test runs the Linux and macOS install scripts served by a
// real server against a scratch root directory (see the comment below).
package fakeroot_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/testserver"
)

// The scripts run for real, with sh, against a scratch directory given as
// REDFLAG_ROOT. The commands that would change the machine itself are shims
// on PATH that record their calls in $RF_LOG:
//   - useradd/userdel/groupdel/getent work on $REDFLAG_ROOT/etc/passwd and
//     etc/group;
//   - chown resolves names through those files and sets the numeric owner
//     for real (as root; otherwise it only records), so the test reads the
//     owners the files end with;
//   - visudo runs the real visudo -c when sudo is installed, else checks the
//     file names the redflag user;
//   - systemctl and launchctl only record; uname reports the architecture
//     the test chose.
// The agent binary the server hands out is itself a small shell script
// that records its calls and, for register, writes a config.

const agentUID = 999

type fakeMachine struct {
	t       *testing.T
	ts      *testserver.TS
	binDir  string
	root    string
	shims   string
	log     string
	token   string
	asRoot  bool
	visudo  string // real visudo, or ""
	machine string // uname -m
}

func newFakeMachine(t *testing.T, goos, machine string) *fakeMachine {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the install scripts run against a fake root on Linux only")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	m := &fakeMachine{t: t, binDir: t.TempDir(), root: t.TempDir(), shims: t.TempDir(), asRoot: os.Geteuid() == 0, machine: machine}
	m.log = filepath.Join(t.TempDir(), "calls.log")
	if p, err := exec.LookPath("visudo"); err == nil {
		m.visudo = p
	}
	m.ts = testserver.Start(t, "sqlite", func(c *config.Server) { c.AgentBinariesDir = m.binDir })
	admin := m.ts.Login(t)
	m.token, _ = m.ts.RegistrationToken(t, admin, 5)
	// The skeleton of a real system: these exist before and after.
	for _, d := range []string{"etc/sudoers.d", "etc/systemd/system", "usr/local/bin", "usr/local/lib", "var/lib", "Library/LaunchDaemons", "Library/Application Support"} {
		if err := os.MkdirAll(filepath.Join(m.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/passwd", "etc/group"} {
		if err := os.WriteFile(filepath.Join(m.root, f), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m.writeShims()
	return m
}

func (m *fakeMachine) shim(name, body string) {
	m.t.Helper()
	if err := os.WriteFile(filepath.Join(m.shims, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		m.t.Fatal(err)
	}
}

func (m *fakeMachine) writeShims() {
	realChown, err := exec.LookPath("chown")
	if err != nil {
		m.t.Fatal(err)
	}
	realUname, err := exec.LookPath("uname")
	if err != nil {
		m.t.Fatal(err)
	}
	record := `printf '%s' "$(basename "$0")" >>"$RF_LOG"; for a in "$@"; do printf ' %s' "$a" >>"$RF_LOG"; done; echo >>"$RF_LOG"` + "\n"
	m.shim("systemctl", record)
	m.shim("launchctl", record)
	m.shim("uname", `if [ "${1:-}" = -m ]; then echo "$RF_MACHINE"; else exec `+realUname+` "$@"; fi`+"\n")
	m.shim("sysctl", "echo 0\n")
	m.shim("shasum", `[ "$1" = -a ] && shift 2; exec sha256sum "$@"`+"\n")
	m.shim("getent", `grep "^$2:" "$REDFLAG_ROOT/etc/$1"`+"\n")
	m.shim("useradd", record+`
home= shell= comment=
while [ $# -gt 1 ]; do
	case $1 in
	--home-dir) home=$2; shift ;;
	--shell) shell=$2; shift ;;
	--comment) comment=$2; shift ;;
	esac
	shift
done
echo "$1:x:999:999:$comment:$home:$shell" >>"$REDFLAG_ROOT/etc/passwd"
echo "$1:x:999:" >>"$REDFLAG_ROOT/etc/group"
`)
	m.shim("userdel", record+`grep -v "^$1:" "$REDFLAG_ROOT/etc/passwd" >"$REDFLAG_ROOT/etc/passwd.new"; mv "$REDFLAG_ROOT/etc/passwd.new" "$REDFLAG_ROOT/etc/passwd"`+"\n")
	m.shim("groupdel", record+`grep -v "^$1:" "$REDFLAG_ROOT/etc/group" >"$REDFLAG_ROOT/etc/group.new"; mv "$REDFLAG_ROOT/etc/group.new" "$REDFLAG_ROOT/etc/group"`+"\n")
	// chown [-R] USER:GROUP PATH...
	m.shim("chown", record+`
flag=
if [ "$1" = -R ]; then flag=-R; shift; fi
owner=$1; shift
u=${owner%%:*} g=${owner#*:}
uid=$(awk -F: -v n="$u" '$1 == n { print $3 }' "$REDFLAG_ROOT/etc/passwd")
gid=$(awk -F: -v n="$g" '$1 == n { print $3 }' "$REDFLAG_ROOT/etc/group")
[ "$g" = wheel ] && gid=0
[ -n "$uid" ] && [ -n "$gid" ] || { echo "chown: unknown owner $owner" >&2; exit 1; }
[ "$RF_AS_ROOT" = 1 ] || exit 0
exec `+realChown+` $flag "$uid:$gid" "$@"
`)
	if m.visudo != "" {
		m.shim("visudo", record+`exec `+m.visudo+` "$@"`+"\n")
	} else {
		m.shim("visudo", record+`[ "$1" = -cf ] && grep -q '^redflag ALL=(root) NOPASSWD: ' "$2"`+"\n")
	}
}

// fakeAgent is the "binary" served: it records its calls, answers
// --version, and register writes a config and a state file.
func fakeAgent(version string) string {
	return `#!/bin/sh
# fake redflag-agent ` + version + `
printf 'agent' >>"$RF_LOG"; for a in "$@"; do printf ' %s' "$a" >>"$RF_LOG"; done; echo >>"$RF_LOG"
case $1 in
--version) echo "redflag-agent ` + version + ` (commit test, built today)" ;;
register)
	config= state=
	while [ $# -gt 0 ]; do
		case $1 in
		--config) config=$2 ;;
		--state-dir) state=$2 ;;
		esac
		shift
	done
	umask 077
	mkdir -p "$state"
	echo '{"agent_id":"0b7e5c1e-0000-4000-8000-000000000001"}' >"$config"
	echo '{}' >"$state/executed.json"
	echo "Registered."
	;;
esac
`
}

func (m *fakeMachine) serve(goos, arch, version string) string {
	m.t.Helper()
	dir := filepath.Join(m.binDir, goos+"-"+arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.t.Fatal(err)
	}
	body := fakeAgent(version)
	if err := os.WriteFile(filepath.Join(dir, "redflag-agent"), []byte(body), 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		m.t.Fatal(err)
	}
	return body
}

func (m *fakeMachine) script(platform, query string) string {
	m.t.Helper()
	r := m.ts.Expect(m.t, http.StatusOK, testserver.Req{Method: "GET", Path: "/install/" + platform + query})
	p := filepath.Join(m.t.TempDir(), "install.sh")
	if err := os.WriteFile(p, r.Body, 0o644); err != nil {
		m.t.Fatal(err)
	}
	return p
}

type runResult struct {
	out   string
	calls []string
	err   error
}

// run runs the script with sh and returns its output and the calls the
// shims recorded during this run.
func (m *fakeMachine) run(script string, args ...string) runResult {
	m.t.Helper()
	_ = os.Remove(m.log)
	cmd := exec.Command("sh", append([]string{script}, args...)...)
	asRoot := "0"
	if m.asRoot {
		asRoot = "1"
	}
	cmd.Env = append(os.Environ(), "PATH="+m.shims+string(os.PathListSeparator)+os.Getenv("PATH"), "REDFLAG_ROOT="+m.root,
		"RF_LOG="+m.log, "RF_MACHINE="+m.machine, "RF_AS_ROOT="+asRoot,
		"TMPDIR="+m.t.TempDir())
	out, err := cmd.CombinedOutput()
	calls, _ := os.ReadFile(m.log)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(calls)), "\n") {
		if l != "" && !strings.HasPrefix(l, "chown ") {
			lines = append(lines, strings.ReplaceAll(l, m.root, "ROOT"))
		}
	}
	return runResult{out: string(out), calls: lines, err: err}
}

// entry is what the test knows of one path under the fake root.
type entry struct {
	mode     fs.FileMode // type and permission bits
	uid, gid int
}

func (e entry) String() string { return fmt.Sprintf("%v %d:%d", e.mode, e.uid, e.gid) }

// tree lists every path under the fake root with its type, mode and owner.
func (m *fakeMachine) tree() map[string]entry {
	m.t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(m.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == m.root {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(m.root, p)
		out[filepath.ToSlash(rel)] = entry{mode: fi.Mode() & (fs.ModeType | fs.ModePerm), uid: int(st.Uid), gid: int(st.Gid)}
		return nil
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return out
}

func (m *fakeMachine) read(rel string) string {
	m.t.Helper()
	b, err := os.ReadFile(filepath.Join(m.root, rel))
	if err != nil {
		m.t.Fatal(err)
	}
	return string(b)
}

// checkTree compares the fake root with want: every path, mode and (as
// root) owner, and nothing else.
func (m *fakeMachine) checkTree(what string, want map[string]entry) {
	m.t.Helper()
	got := m.tree()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p+" (want "+w.String()+")")
		case g.mode != w.mode:
			diffs = append(diffs, fmt.Sprintf("%s: mode %v, want %v", p, g.mode, w.mode))
		case m.asRoot && (g.uid != w.uid || g.gid != w.gid):
			diffs = append(diffs, fmt.Sprintf("%s: owner %d:%d, want %d:%d", p, g.uid, g.gid, w.uid, w.gid))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "unexpected "+p+" ("+g.String()+")")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		m.t.Errorf("%s: the fake root differs:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

func dir(perm fs.FileMode, uid, gid int) entry {
	return entry{mode: fs.ModeDir | perm, uid: uid, gid: gid}
}
func file(perm fs.FileMode, uid, gid int) entry { return entry{mode: perm, uid: uid, gid: gid} }
func link(owner int) entry                      { return entry{mode: fs.ModeSymlink | 0o777, uid: owner, gid: owner} }

func skeleton(owner int) map[string]entry {
	return map[string]entry{
		"etc": dir(0o755, owner, owner), "etc/sudoers.d": dir(0o755, owner, owner), "etc/passwd": file(0o644, owner, owner),
		"etc/systemd": dir(0o755, owner, owner), "etc/systemd/system": dir(0o755, owner, owner),
		"etc/group": file(0o644, owner, owner), "usr": dir(0o755, owner, owner), "usr/local": dir(0o755, owner, owner),
		"usr/local/bin": dir(0o755, owner, owner), "usr/local/lib": dir(0o755, owner, owner), "var": dir(0o755, owner, owner), "var/lib": dir(0o755, owner, owner),
		"Library": dir(0o755, owner, owner), "Library/LaunchDaemons": dir(0o755, owner, owner),
		"Library/Application Support": dir(0o755, owner, owner),
	}
}

func with(base map[string]entry, more map[string]entry) map[string]entry {
	out := map[string]entry{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func wantCalls(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: commands run:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func mustSucceed(t *testing.T, what string, r runResult) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v\n%s", what, r.err, r.out)
	}
	t.Logf("%s:\n%s", what, r.out)
}

func opensslVerifies() bool {
	out, err := exec.Command("openssl", "version").Output()
	return err == nil && bytes.HasPrefix(out, []byte("OpenSSL 3"))
}

func TestLinuxScriptFakeRoot(t *testing.T) {
	m := newFakeMachine(t, "linux", "x86_64")
	first := m.serve("linux", "amd64", "1.2.3")
	script := m.script("linux", "?token="+m.token)
	base := skeleton(0)
	me := os.Geteuid()
	if !m.asRoot {
		t.Logf("not running as root: modes are checked, owners only through the recorded chown calls")
		base = skeleton(me)
	}
	cfgPath := "ROOT/etc/redflag/agent/config.json"
	statePath := "ROOT/var/lib/redflag/agent"
	linkOwner := 0
	if !m.asRoot {
		linkOwner = me
	}
	installed := func(agent string) map[string]entry {
		return with(base, map[string]entry{
			"etc/redflag":                         dir(0o755, 0, 0),
			"etc/redflag/agent":                   dir(0o700, agentUID, agentUID),
			"etc/redflag/agent/config.json":       file(0o600, agentUID, agentUID),
			"etc/sudoers.d/redflag-agent":         file(0o440, 0, 0),
			"usr/local/bin/redflag-agent":         link(linkOwner),
			"usr/local/lib/redflag":               dir(0o755, agentUID, agentUID),
			"usr/local/lib/redflag/redflag-agent": file(0o755, agentUID, agentUID),
			"var/lib/redflag":                     dir(0o755, 0, 0),
			"var/lib/redflag/agent":               dir(0o700, agentUID, agentUID),
			"var/lib/redflag/agent/executed.json": file(0o600, agentUID, agentUID),
		})
	}

	// First run: everything is created and the agent registers.
	r := m.run(script)
	mustSucceed(t, "first install", r)
	visudoCall := "visudo -cf " + m.tmpPattern(r, "sudoers")
	wantCalls(t, "first install", r.calls,
		"useradd --system --user-group --no-create-home --home-dir /var/lib/redflag/agent --shell "+nologin()+" --comment RedFlag agent redflag",
		visudoCall,
		"agent register --server "+m.ts.URL+" --token "+m.token+" --config "+cfgPath+" --state-dir "+statePath,
		"agent install-service --user redflag --config "+cfgPath+" --state-dir "+statePath)
	m.checkTree("after the first install", installed(first))
	if got := m.read("usr/local/lib/redflag/redflag-agent"); got != first {
		t.Errorf("installed binary is not the one served")
	}
	m.checkLink()
	if got := m.read("etc/passwd"); !strings.Contains(got, "redflag:x:999:999:RedFlag agent:/var/lib/redflag/agent:"+nologin()+"\n") {
		t.Errorf("passwd after install:\n%s", got)
	}
	sudoers := m.read("etc/sudoers.d/redflag-agent")
	for _, want := range []string{"redflag ALL=(root) NOPASSWD: REDFLAG_PACKAGES, REDFLAG_REBOOT", "/usr/bin/apt-get", "/usr/bin/dnf", "/usr/bin/pacman",
		"/usr/sbin/shutdown -r *"} {
		if !strings.Contains(sudoers, want) {
			t.Errorf("sudoers drop-in lacks %q:\n%s", want, sudoers)
		}
	}
	if strings.Contains(sudoers, "ALL=(ALL)") || strings.Contains(sudoers, "NOPASSWD: ALL") {
		t.Errorf("sudoers drop-in grants everything:\n%s", sudoers)
	}
	for _, want := range []string{"installed redflag-agent 1.2.3 (linux/amd64", "registered with " + m.ts.URL, "created the system user redflag",
		"the binary is /usr/local/lib/redflag/redflag-agent", "running as redflag"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("first install output lacks %q", want)
		}
	}
	if opensslVerifies() && !strings.Contains(r.out, "SHA-256 and Ed25519 signature (key ") {
		t.Errorf("OpenSSL 3 is installed but the script did not verify the signature:\n%s", r.out)
	}
	if strings.Contains(r.out, m.token) {
		t.Errorf("the script printed the registration token")
	}
	config := m.read("etc/redflag/agent/config.json")

	// Second run with a new release: the binary is replaced in place, the
	// registration and the user are kept.
	second := m.serve("linux", "amd64", "1.2.4")
	r = m.run(script)
	mustSucceed(t, "second install", r)
	wantCalls(t, "second install", r.calls,
		"agent --version",
		"visudo -cf "+m.tmpPattern(r, "sudoers"),
		"agent install-service --user redflag --config "+cfgPath+" --state-dir "+statePath)
	m.checkTree("after the second install", installed(second))
	if got := m.read("usr/local/lib/redflag/redflag-agent"); got != second {
		t.Errorf("the second run did not replace the binary")
	}
	m.checkLink()
	if got := m.read("etc/redflag/agent/config.json"); got != config {
		t.Errorf("the second run changed the registration: %s → %s", config, got)
	}
	for _, want := range []string{"upgraded redflag-agent from 1.2.3 to 1.2.4", "kept the existing registration", "user redflag exists; keeping it"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("second install output lacks %q", want)
		}
	}

	// Uninstall: back to the bare system.
	r = m.run(script, "--uninstall")
	mustSucceed(t, "uninstall", r)
	wantCalls(t, "uninstall", r.calls,
		"agent uninstall-service --config "+cfgPath+" --state-dir "+statePath,
		"userdel redflag",
		"groupdel redflag")
	m.checkTree("after uninstall", base)
	if got := m.read("etc/passwd") + m.read("etc/group"); strings.Contains(got, "redflag") {
		t.Errorf("the redflag user or group is left:\n%s", got)
	}

	// The ?action=uninstall variant on a clean machine has nothing to do.
	r = m.run(m.script("linux", "?action=uninstall"))
	mustSucceed(t, "second uninstall", r)
	if !strings.Contains(r.out, "nothing to remove") || len(r.calls) != 0 {
		t.Errorf("uninstalling twice: calls %q, output:\n%s", r.calls, r.out)
	}
	m.checkTree("after the second uninstall", base)

	// A unit left without its binary is removed all the same.
	unit := filepath.Join(m.root, "etc/systemd/system/redflag-agent.service")
	if err := os.WriteFile(unit, []byte("[Unit]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = m.run(script, "--uninstall")
	mustSucceed(t, "uninstall of a leftover unit", r)
	wantCalls(t, "uninstall of a leftover unit", r.calls, "systemctl disable --now redflag-agent", "systemctl daemon-reload")
	m.checkTree("after removing a leftover unit", base)
}

// checkLink: /usr/local/bin/redflag-agent is a relative symbolic link to
// the binary, and the command found there is the installed one.
func (m *fakeMachine) checkLink() {
	m.t.Helper()
	target, err := os.Readlink(filepath.Join(m.root, "usr/local/bin/redflag-agent"))
	if err != nil || target != "../lib/redflag/redflag-agent" {
		m.t.Errorf("usr/local/bin/redflag-agent links to %q (%v), want ../lib/redflag/redflag-agent", target, err)
	}
	if m.read("usr/local/bin/redflag-agent") != m.read("usr/local/lib/redflag/redflag-agent") {
		m.t.Errorf("the link does not reach the installed binary")
	}
}

// tmpPattern finds the temporary path the script passed for name (it is
// random) in the recorded calls.
func (m *fakeMachine) tmpPattern(r runResult, name string) string {
	for _, c := range r.calls {
		if strings.HasPrefix(c, "visudo -cf ") && strings.HasSuffix(c, "/"+name) {
			return strings.TrimPrefix(c, "visudo -cf ")
		}
	}
	return "(no visudo call for " + name + ")"
}

func nologin() string {
	for _, s := range []string{"/usr/sbin/nologin", "/sbin/nologin"} {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&0o111 != 0 {
			return s
		}
	}
	return "/bin/false"
}

func TestLinuxScriptKeepsForeignUser(t *testing.T) {
	m := newFakeMachine(t, "linux", "x86_64")
	m.serve("linux", "amd64", "1.0.0")
	passwd := "root:x:0:0:root:/root:/bin/sh\nredflag:x:999:999:someone else's account:/home/redflag:/bin/bash\n"
	if err := os.WriteFile(filepath.Join(m.root, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.root, "etc/group"), []byte("root:x:0:\nredflag:x:999:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := m.script("linux", "?token="+m.token)
	r := m.run(script)
	mustSucceed(t, "install", r)
	for _, c := range r.calls {
		if strings.HasPrefix(c, "useradd") {
			t.Errorf("useradd ran although the user exists: %s", c)
		}
	}
	r = m.run(script, "--uninstall")
	mustSucceed(t, "uninstall", r)
	for _, c := range r.calls {
		if strings.HasPrefix(c, "userdel") || strings.HasPrefix(c, "groupdel") {
			t.Errorf("uninstall removed an account it did not create: %s", c)
		}
	}
	if !strings.Contains(r.out, "kept the user redflag") || m.read("etc/passwd") != passwd {
		t.Errorf("the foreign user was not kept:\n%s", r.out)
	}
}

func TestLinuxScriptRefusesBadSignature(t *testing.T) {
	if !opensslVerifies() {
		t.Skip("OpenSSL 3 is not installed: the scripts check only the SHA-256 then")
	}
	m := newFakeMachine(t, "linux", "aarch64")
	m.serve("linux", "arm64", "1.0.0")
	script := m.script("linux", "?token="+m.token)
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the key id but swap the key: the signature must fail.
	i := bytes.Index(b, []byte("\nKEYS='"))
	j := bytes.IndexByte(b[i+7:], ':')
	k := bytes.IndexByte(b[i+7:], '\'')
	if i < 0 || j < 0 || k < j {
		t.Fatalf("no KEYS line in the script")
	}
	forged := append(append(append([]byte{}, b[:i+7+j+1]...), "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="...), b[i+7+k:]...)
	if err := os.WriteFile(script, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	r := m.run(script)
	if r.err == nil || !strings.Contains(r.out, "signature does not verify") {
		t.Fatalf("a binary whose signature fails was accepted: %v\n%s", r.err, r.out)
	}
	for _, p := range []string{"usr/local/bin/redflag-agent", "usr/local/lib/redflag/redflag-agent"} {
		if _, err := os.Lstat(filepath.Join(m.root, p)); err == nil {
			t.Errorf("%s was installed despite the bad signature", p)
		}
	}
	if len(r.calls) != 0 {
		t.Errorf("commands ran before the signature check: %q", r.calls)
	}
}

func TestDarwinScriptFakeRoot(t *testing.T) {
	m := newFakeMachine(t, "darwin", "arm64")
	bin := m.serve("darwin", "arm64", "2.0.0")
	script := m.script("darwin", "?token="+m.token)
	base := skeleton(0)
	if !m.asRoot {
		base = skeleton(os.Geteuid())
	}
	support := "Library/Application Support"
	cfgPath := "ROOT/Library/Application Support/RedFlag/agent/config.json"
	statePath := "ROOT/Library/Application Support/RedFlag/agent/state"
	installed := with(base, map[string]entry{
		support + "/RedFlag":                           dir(0o755, 0, 0),
		support + "/RedFlag/agent":                     dir(0o700, 0, 0),
		support + "/RedFlag/agent/config.json":         file(0o600, 0, 0),
		support + "/RedFlag/agent/state":               dir(0o700, 0, 0),
		support + "/RedFlag/agent/state/executed.json": file(0o600, 0, 0),
		"usr/local/bin/redflag-agent":                  file(0o755, 0, 0),
	})
	if !m.asRoot {
		// Without chown the directories keep the test user as owner.
		for k, v := range installed {
			if _, ok := base[k]; !ok {
				v.uid, v.gid = os.Geteuid(), os.Getegid()
				installed[k] = v
			}
		}
	}

	r := m.run(script)
	mustSucceed(t, "install", r)
	wantCalls(t, "install", r.calls,
		"agent register --server "+m.ts.URL+" --token "+m.token+" --config "+cfgPath+" --state-dir "+statePath,
		"agent install-service --config "+cfgPath+" --state-dir "+statePath)
	m.checkTree("after install", installed)
	if m.read("usr/local/bin/redflag-agent") != bin {
		t.Errorf("installed binary is not the one served")
	}

	r = m.run(script)
	mustSucceed(t, "second install", r)
	if !strings.Contains(r.out, "kept the existing registration") || !strings.Contains(r.out, "reinstalled /usr/local/bin/redflag-agent 2.0.0") {
		t.Errorf("second install output:\n%s", r.out)
	}

	r = m.run(script, "--uninstall")
	mustSucceed(t, "uninstall", r)
	wantCalls(t, "uninstall", r.calls, "agent uninstall-service --config "+cfgPath+" --state-dir "+statePath)
	m.checkTree("after uninstall", base)
}

func TestLinuxScriptMissingBinary(t *testing.T) {
	m := newFakeMachine(t, "linux", "armv7l")
	m.serve("linux", "amd64", "1.0.0") // but nothing for linux/arm
	r := m.run(m.script("linux", "?token="+m.token))
	if r.err == nil || !strings.Contains(r.out, "the server answered 404") || !strings.Contains(r.out, "no agent binary for linux/arm") {
		t.Fatalf("a missing binary: %v\n%s", r.err, r.out)
	}
	if len(r.calls) != 0 {
		t.Errorf("commands ran although the download failed: %q", r.calls)
	}
	m.checkTree("after a failed download", skeletonFor(m))
}

func skeletonFor(m *fakeMachine) map[string]entry {
	if m.asRoot {
		return skeleton(0)
	}
	return skeleton(os.Geteuid())
}

// TestLinuxScriptMovesOldLayout: an agent an earlier installer put at
// /usr/local/bin/redflag-agent (a regular file, root's) is upgraded into
// /usr/local/lib/redflag with the link in its place, and uninstalled.
func TestLinuxScriptMovesOldLayout(t *testing.T) {
	m := newFakeMachine(t, "linux", "x86_64")
	m.serve("linux", "amd64", "1.2.3")
	if err := os.WriteFile(filepath.Join(m.root, "usr/local/bin/redflag-agent"), []byte(fakeAgent("1.0.0")), 0o755); err != nil {
		t.Fatal(err)
	}
	script := m.script("linux", "?token="+m.token)
	r := m.run(script)
	mustSucceed(t, "install over the old layout", r)
	if !slices.Contains(r.calls, "agent --version") || !strings.Contains(r.out, "upgraded redflag-agent from 1.0.0 to 1.2.3") {
		t.Errorf("the old binary's version was not read: %q\n%s", r.calls, r.out)
	}
	m.checkLink()
	r = m.run(script, "--uninstall")
	mustSucceed(t, "uninstall", r)
	m.checkTree("after uninstall", skeletonFor(m))
}
