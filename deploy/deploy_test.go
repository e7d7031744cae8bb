// Package deploy_test checks the deployment files (Dockerfile,
// .dockerignore, docker-compose.yml, the systemd unit and the example
// environment files) against the code they configure: no Docker engine or
// systemd is needed, so a renamed variable, flag, command directory or
// platform fails here instead of in a user's deployment.
package deploy_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/agentbin"
	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/servercmd"
	"github.com/redflaghq/redflag/internal/version"
)

const root = ".."

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serverKnows lists the environment variables and flags redflag-server
// accepts, from its own -h output (internal/config).
func serverKnows(t *testing.T) (env, flags map[string]bool) {
	t.Helper()
	var help bytes.Buffer
	_, err := config.LoadServer([]string{"-h"}, func(string) string { return "" }, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("redflag-server -h: %v", err)
	}
	env, flags = map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env (REDFLAG_[A-Z0-9_]+)\)`).FindAllStringSubmatch(help.String(), -1) {
		env[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(help.String(), -1) {
		flags[m[1]] = true
	}
	for _, must := range []string{"REDFLAG_DATA_DIR", "REDFLAG_DATABASE_URL", "REDFLAG_LISTEN", "REDFLAG_AGENT_BINARIES_DIR"} {
		if !env[must] {
			t.Fatalf("could not read %s from redflag-server -h:\n%s", must, help.String())
		}
	}
	return env, flags
}

// redflagVars lists the REDFLAG_ variables a file names, commented-out
// examples included, in order of first appearance.
func redflagVars(text string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range regexp.MustCompile(`\b(REDFLAG_[A-Z0-9_]+)\b`).FindAllStringSubmatch(text, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

// parseDockerfile lists the Dockerfile's instructions, comments dropped.
func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	var out []instruction
	var cur string
	for _, line := range strings.Split(read(t, "Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		if cur != "" {
			cmd, args, _ := strings.Cut(cur, " ")
			out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		}
		cur = ""
	}
	return out
}

func TestDockerfile(t *testing.T) {
	env, _ := serverKnows(t)
	ins := parseDockerfile(t)
	all := func(cmd string) []string {
		var out []string
		for _, i := range ins {
			if i.cmd == cmd {
				out = append(out, i.args)
			}
		}
		return out
	}
	text := read(t, "Dockerfile")

	// The Go toolchain of the build stage is the one go.mod asks for.
	goMod := read(t, "go.mod")
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	goArg := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(text)
	if goLine == nil || goArg == nil || goArg[1] != goLine[1] {
		t.Errorf("Dockerfile GO_VERSION %v does not match go.mod's go %v", goArg, goLine)
	}
	if !strings.Contains(text, "golang:${GO_VERSION}") {
		t.Error("the build stage does not use golang:${GO_VERSION}")
	}

	// Every file copied from the build context exists (and is not ignored).
	ignored := dockerignore(t)
	for _, args := range all("COPY") {
		if strings.Contains(args, "--from=") {
			continue
		}
		f := strings.Fields(args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
			if src != "." && ignored(src) {
				t.Errorf("COPY %s: .dockerignore leaves it out of the build context", src)
			}
		}
	}
	// What the build needs is in the context.
	for _, p := range []string{"go.mod", "go.sum", "VERSION", "Makefile", "cmd/redflag-server", "cmd/redflag-agent", "internal/store/migrations", "web/src", "web/embed.go"} {
		if ignored(p) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", p)
		}
	}
	for _, p := range []string{".git", "web/node_modules", "bin", "data"} {
		if !ignored(p) {
			t.Errorf(".dockerignore should leave out %s", p)
		}
	}

	// The packages built exist, and the ldflags set variables that exist.
	for _, m := range regexp.MustCompile(`\./cmd/[a-z-]+`).FindAllString(text, -1) {
		if fi, err := os.Stat(filepath.Join(root, m)); err != nil || !fi.IsDir() {
			t.Errorf("the Dockerfile builds %s, which is not a directory", m)
		}
	}
	module := regexp.MustCompile(`(?m)^module (\S+)`).FindStringSubmatch(goMod)[1]
	if !strings.Contains(text, "pkg="+module+"/internal/version;") {
		t.Errorf("the ldflags do not set %s/internal/version", module)
	}
	_ = []*string{&version.Version, &version.Commit, &version.BuildDate} // the variables -X sets
	for _, v := range []string{"$pkg.Version=", "$pkg.Commit=", "$pkg.BuildDate="} {
		if !strings.Contains(text, v) {
			t.Errorf("the ldflags do not set %s", v)
		}
	}

	// The agent binaries: `make release` builds every platform the server
	// serves into $(RELEASE_DIR)/agents, which the image moves into place.
	makefile := read(t, "Makefile")
	platforms := regexp.MustCompile(`(?m)^RELEASE_PLATFORMS\s*:?=\s*(.*)$`).FindStringSubmatch(makefile)
	if platforms == nil || !regexp.MustCompile(`(?m)^release:`).MatchString(makefile) || !strings.Contains(makefile, "$(RELEASE_DIR)/agents/") {
		t.Fatal("the Makefile has no release target building into $(RELEASE_DIR)/agents with RELEASE_PLATFORMS")
	}
	var want []string
	for _, p := range agentbin.Platforms {
		want = append(want, p.String())
	}
	got := strings.Fields(platforms[1])
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("make release builds agents for %v; the server serves %v (internal/agentbin.Platforms)", got, want)
	}
	if !strings.Contains(text, "make release ") || !strings.Contains(text, " RELEASE_DIR=/tmp/release;") ||
		!strings.Contains(text, "mv /tmp/release/agents /out/usr/share/redflag/agents;") {
		t.Error("the image does not take its agents from make release")
	}

	// The runtime stage's environment names variables the server reads,
	// and the paths agree with each other.
	vals := map[string]string{}
	for _, args := range all("ENV") {
		for _, kv := range strings.Fields(args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Errorf("ENV %q: use the KEY=value form", kv)
				continue
			}
			if !env[k] {
				t.Errorf("ENV %s: redflag-server does not read this variable", k)
			}
			vals[k] = v
		}
	}
	if vals["REDFLAG_AGENT_BINARIES_DIR"] != "/usr/share/redflag/agents" {
		t.Errorf("REDFLAG_AGENT_BINARIES_DIR=%q is not where the agents are built", vals["REDFLAG_AGENT_BINARIES_DIR"])
	}
	if vol := all("VOLUME"); len(vol) != 1 || !strings.Contains(vol[0], `"`+vals["REDFLAG_DATA_DIR"]+`"`) {
		t.Errorf("VOLUME %v is not REDFLAG_DATA_DIR=%s", vol, vals["REDFLAG_DATA_DIR"])
	}
	_, port, _ := strings.Cut(vals["REDFLAG_LISTEN"], ":")
	if exp := all("EXPOSE"); len(exp) != 1 || exp[0] != port {
		t.Errorf("EXPOSE %v does not match REDFLAG_LISTEN=%s", exp, vals["REDFLAG_LISTEN"])
	}
	if u := all("USER"); len(u) != 1 || u[0] != "10001:10001" {
		t.Errorf("USER %v, want 10001:10001 (never root)", u)
	}
	if !strings.Contains(text, "--chown=10001:10001 /out/var/lib/redflag "+vals["REDFLAG_DATA_DIR"]) {
		t.Error("the data directory in the image is not owned by the server's user")
	}
	// HEALTHCHECK runs a subcommand the binary has.
	hc := all("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("HEALTHCHECK %v", hc)
	}
	m := regexp.MustCompile(`CMD \["/usr/local/bin/redflag-server", "([a-z-]+)"\]`).FindStringSubmatch(hc[0])
	if m == nil || servercmd.Lookup(m[1]) == nil {
		t.Errorf("HEALTHCHECK %q does not run a redflag-server subcommand", hc[0])
	}
	if e := all("ENTRYPOINT"); len(e) != 1 || e[0] != `["/usr/local/bin/redflag-server"]` || !strings.Contains(text, "-o /out/usr/local/bin/redflag-server ") {
		t.Errorf("ENTRYPOINT %v is not the server binary the build writes", e)
	}
}

// dockerignore returns whether a context path is left out. It knows the
// plain patterns this repository uses (a name, a path, a leading "/").
func dockerignore(t *testing.T) func(string) bool {
	var pats []string
	for _, l := range strings.Split(read(t, ".dockerignore"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.ContainsAny(l, "!") {
			t.Fatalf(".dockerignore pattern %q: this test knows no exceptions", l)
		}
		pats = append(pats, strings.TrimPrefix(l, "/"))
	}
	return func(p string) bool {
		p = strings.TrimSuffix(filepath.ToSlash(p), "/")
		for _, pat := range pats {
			for q := p; q != "." && q != ""; q = filepath.ToSlash(filepath.Dir(q)) {
				if ok, _ := filepath.Match(pat, q); ok {
					return true
				}
			}
		}
		return false
	}
}

func TestDockerCompose(t *testing.T) {
	env, _ := serverKnows(t)
	text := read(t, "docker-compose.yml")
	composeOnly := map[string]bool{"REDFLAG_PORT": true} // the host port, read by compose itself
	for _, v := range redflagVars(text) {
		if !env[v] && !composeOnly[v] {
			t.Errorf("docker-compose.yml uses %s, which redflag-server does not read", v)
		}
	}
	for _, v := range redflagVars(read(t, "deploy/compose.env.example")) {
		if !env[v] && !composeOnly[v] {
			t.Errorf("deploy/compose.env.example sets %s, which redflag-server does not read", v)
		}
	}
	for _, want := range []string{
		"image: postgres:16",
		"pg_isready",
		"condition: service_healthy",
		"restart: unless-stopped",
		"REDFLAG_DATABASE_URL: postgres://redflag:${POSTGRES_PASSWORD}@postgres:5432/redflag",
		"REDFLAG_ADMIN_PASSWORD: ${REDFLAG_ADMIN_PASSWORD:?",
		"- redflag-data:/var/lib/redflag",
		"- postgres-data:/var/lib/postgresql/data",
		"build: .",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("docker-compose.yml lacks %q", want)
		}
	}
	if strings.Contains(text, "\t") {
		t.Error("docker-compose.yml contains a tab: YAML indents with spaces")
	}
	// The volume path is the image's data directory.
	if !strings.Contains(read(t, "Dockerfile"), `VOLUME ["/var/lib/redflag"]`) {
		t.Error("the compose volume is not mounted on the image's VOLUME")
	}
}

// unit parses a systemd unit into key → values (keys may repeat).
func unit(t *testing.T, rel string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range strings.Split(read(t, rel), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=value", rel, l)
		}
		out[k] = append(out[k], v)
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	env, flags := serverKnows(t)
	u := unit(t, "deploy/redflag-server.service")
	one := func(k string) string {
		if len(u[k]) != 1 {
			t.Errorf("%s is set %d times, want once", k, len(u[k]))
			return ""
		}
		return u[k][0]
	}
	exec := strings.Fields(one("ExecStart"))
	if len(exec) == 0 || exec[0] != "/usr/local/bin/redflag-server" {
		t.Fatalf("ExecStart=%v does not run /usr/local/bin/redflag-server", exec)
	}
	var dataDir string
	for i := 1; i < len(exec); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(exec[i], "-"), "=")
		if !strings.HasPrefix(exec[i], "-") || !flags[name] {
			t.Errorf("ExecStart passes %q, which is not a redflag-server flag", exec[i])
			continue
		}
		if !hasVal && i+1 < len(exec) {
			i++
			val = exec[i]
		}
		if name == "data-dir" {
			dataDir = val
		}
	}
	if dataDir != "/var/lib/"+one("StateDirectory") {
		t.Errorf("--data-dir %q is not the StateDirectory /var/lib/%s", dataDir, one("StateDirectory"))
	}
	for _, e := range u["Environment"] {
		k, _, _ := strings.Cut(e, "=")
		if !env[k] {
			t.Errorf("Environment=%s: redflag-server does not read it", k)
		}
	}
	for _, v := range redflagVars(read(t, "deploy/server.env.example")) {
		if !env[v] {
			t.Errorf("deploy/server.env.example sets %s, which redflag-server does not read", v)
		}
	}
	want := map[string]string{
		"User": "redflag", "Group": "redflag", "StateDirectory": "redflag", "StateDirectoryMode": "0700",
		"EnvironmentFile": "-/etc/redflag/server.env", "Restart": "on-failure",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
		"RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
		"SystemCallArchitectures": "native", "UMask": "0077", "WantedBy": "multi-user.target",
	}
	for k, v := range want {
		if got := one(k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	if !slices.Contains(u["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%v lacks @system-service", u["SystemCallFilter"])
	}
	// The server drains for up to 30 s after SIGTERM: systemd must wait longer.
	if one("TimeoutStopSec") != "45s" {
		t.Errorf("TimeoutStopSec=%s, want 45s (the server's drain is 30 s)", one("TimeoutStopSec"))
	}
}
