package scanner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Docker is not installed here: the Engine API is the edge the tests
// stand in for, with fakeEngine served over a unix socket like the real
// daemon's, and fakeRegistry on loopback for the registry.

func fakeHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func fakeDigest(s string) string { return "sha256:" + fakeHex(s) }

type fakeContainer struct {
	ID, Name, ConfigImage, ImageID string
	Running                        bool
	Labels                         map[string]string
	// raw is a full inspect document (fixture or create body); Id, Name,
	// Image, State and Config.Image are overwritten when rendered.
	raw map[string]any
}

type fakeImage struct {
	ID          string
	RepoDigests []string
	raw         map[string]any
}

type fakePull struct {
	stream   string
	newImage *fakeImage
}

type fakeEngine struct {
	t  *testing.T
	mu sync.Mutex

	containers []*fakeContainer
	images     map[string]*fakeImage
	tags       map[string]string // full reference → image id
	pulls      map[string]fakePull
	failStart  bool

	calls    []string
	regAuth  []string
	created  []map[string]any
	connects []map[string]any
	n        int
}

func newFakeEngine(t *testing.T) (*fakeEngine, string) {
	e := &fakeEngine{t: t, images: map[string]*fakeImage{}, tags: map[string]string{}, pulls: map[string]fakePull{}}
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(e)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return e, sock
}

func engineErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func engineJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (e *fakeEngine) find(idOrName string) *fakeContainer {
	for _, c := range e.containers {
		if c.ID == idOrName || c.Name == idOrName {
			return c
		}
	}
	return nil
}

func (e *fakeEngine) image(name string) *fakeImage {
	if img, ok := e.images[name]; ok {
		return img
	}
	if r, err := parseImageRef(name); err == nil {
		return e.images[e.tags[r.String()]]
	}
	return nil
}

func jsonCopy(t *testing.T, v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *fakeEngine) renderContainer(c *fakeContainer) map[string]any {
	var m map[string]any
	if c.raw != nil {
		m = jsonCopy(e.t, c.raw)
	} else {
		m = map[string]any{
			"Config":          map[string]any{"Hostname": c.ID[:12], "Env": []string{"PATH=/usr/bin", "MODE=prod"}, "Cmd": []string{"serve"}},
			"HostConfig":      map[string]any{"NetworkMode": "bridge", "RestartPolicy": map[string]any{"Name": "always"}},
			"NetworkSettings": map[string]any{"Networks": map[string]any{"bridge": map[string]any{"NetworkID": fakeHex("bridge"), "IPAddress": "172.17.0.9"}}},
			"Mounts":          []any{},
		}
	}
	m["Id"], m["Name"], m["Image"] = c.ID, "/"+c.Name, c.ImageID
	cfg, _ := m["Config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
		m["Config"] = cfg
	}
	cfg["Image"] = c.ConfigImage
	if c.Labels != nil {
		cfg["Labels"] = c.Labels
	}
	status := "exited"
	if c.Running {
		status = "running"
	}
	m["State"] = map[string]any{"Status": status, "Running": c.Running}
	return m
}

func (e *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	call := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		call += "?" + r.URL.RawQuery
	}
	e.calls = append(e.calls, call)
	p := r.URL.Path
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && p == "/containers/json":
		var out []map[string]any
		for _, c := range e.containers {
			// The real daemon lists running ones only; listing all checks
			// that the scanner filters anyway.
			st := "exited"
			if c.Running {
				st = "running"
			}
			out = append(out, map[string]any{"Id": c.ID, "Names": []string{"/" + c.Name}, "Image": c.ConfigImage, "ImageID": c.ImageID, "State": st})
		}
		engineJSON(w, out)
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/json"):
		c := e.find(strings.TrimSuffix(strings.TrimPrefix(p, "/containers/"), "/json"))
		if c == nil {
			engineErr(w, http.StatusNotFound, "No such container")
			return
		}
		engineJSON(w, e.renderContainer(c))
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/images/") && strings.HasSuffix(p, "/json"):
		name := strings.TrimSuffix(strings.TrimPrefix(p, "/images/"), "/json")
		img := e.image(name)
		if img == nil {
			engineErr(w, http.StatusNotFound, "No such image: "+name)
			return
		}
		m := map[string]any{}
		if img.raw != nil {
			m = jsonCopy(e.t, img.raw)
		}
		m["Id"], m["RepoDigests"] = img.ID, img.RepoDigests
		engineJSON(w, m)
	case r.Method == http.MethodPost && p == "/images/create":
		e.regAuth = append(e.regAuth, r.Header.Get("X-Registry-Auth"))
		key := q.Get("fromImage") + ":" + q.Get("tag")
		pl, ok := e.pulls[key]
		if !ok {
			engineErr(w, http.StatusNotFound, "pull access denied for "+key)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(pl.stream))
		if pl.newImage != nil {
			e.images[pl.newImage.ID] = pl.newImage
			e.tags[key] = pl.newImage.ID
		}
	case r.Method == http.MethodPost && p == "/containers/create":
		name := q.Get("name")
		if e.find(name) != nil {
			engineErr(w, http.StatusConflict, "Conflict. The container name \"/"+name+"\" is already in use")
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			engineErr(w, http.StatusBadRequest, err.Error())
			return
		}
		e.created = append(e.created, body)
		ref, _ := body["Image"].(string)
		img := e.image(ref)
		if img == nil {
			engineErr(w, http.StatusNotFound, "No such image: "+ref)
			return
		}
		e.n++
		cfg := map[string]any{}
		for k, v := range body {
			if k != "HostConfig" && k != "NetworkingConfig" {
				cfg[k] = v
			}
		}
		c := &fakeContainer{ID: fakeHex(fmt.Sprintf("created-%d", e.n)), Name: name, ConfigImage: ref, ImageID: img.ID,
			raw: map[string]any{"Config": cfg, "HostConfig": body["HostConfig"], "NetworkSettings": map[string]any{"Networks": map[string]any{}}}}
		e.containers = append(e.containers, c)
		w.WriteHeader(http.StatusCreated)
		engineJSON(w, map[string]any{"Id": c.ID, "Warnings": []string{}})
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/networks/") && strings.HasSuffix(p, "/connect"):
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		body["network"] = strings.TrimSuffix(strings.TrimPrefix(p, "/networks/"), "/connect")
		e.connects = append(e.connects, body)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/containers/"):
		id, action, _ := strings.Cut(strings.TrimPrefix(p, "/containers/"), "/")
		c := e.find(id)
		if c == nil {
			engineErr(w, http.StatusNotFound, "No such container: "+id)
			return
		}
		switch action {
		case "stop":
			if !c.Running {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			c.Running = false
		case "start":
			if e.failStart && isCreated(c) {
				engineErr(w, http.StatusInternalServerError, "driver failed programming external connectivity: Bind for 0.0.0.0:8080 failed: port is already allocated")
				return
			}
			if c.Running {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			c.Running = true
		case "rename":
			if e.find(q.Get("name")) != nil {
				engineErr(w, http.StatusConflict, "name in use")
				return
			}
			c.Name = q.Get("name")
		default:
			engineErr(w, http.StatusNotFound, "page not found")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && strings.HasPrefix(p, "/containers/"):
		c := e.find(strings.TrimPrefix(p, "/containers/"))
		if c == nil {
			engineErr(w, http.StatusNotFound, "No such container")
			return
		}
		if c.Running && q.Get("force") != "1" {
			engineErr(w, http.StatusConflict, "cannot remove a running container")
			return
		}
		e.containers = slices.DeleteFunc(e.containers, func(x *fakeContainer) bool { return x == c })
		w.WriteHeader(http.StatusNoContent)
	default:
		engineErr(w, http.StatusNotFound, "page not found")
	}
}

// isCreated tells containers made through POST /containers/create.
func isCreated(c *fakeContainer) bool {
	for i := 1; i < 100; i++ {
		if c.ID == fakeHex(fmt.Sprintf("created-%d", i)) {
			return true
		}
	}
	return false
}

func dockerFixtureMap(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "docker", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func dockerFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "docker", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The test world. Digests: nginx:1.27 moved from A to B in the registry.
var (
	nginxOldID = "sha256:" + fakeHex("nginx-img-old")
	nginxNewID = "sha256:" + fakeHex("nginx-img-new")
	redisID    = "sha256:" + fakeHex("redis-img")
	appOldID   = "sha256:" + fakeHex("app-old")
	appNewID   = "sha256:" + fakeHex("app-new")
	localID    = "sha256:" + fakeHex("local")
	redisDig   = fakeDigest("redis-index")
	appOldDig  = fakeDigest("app-old")
	appNewDig  = fakeDigest("app-new")
	webID      = fakeHex("web")
)

type dockerWorld struct {
	eng   *fakeEngine
	reg   *fakeRegistry
	d     *Docker
	logs  *lockedBuffer
	hosts *[]string
	sleep *sleepRecorder
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newDockerWorld(t *testing.T, opts Options) *dockerWorld {
	eng, sock := newFakeEngine(t)
	nginxImg := dockerFixtureMap(t, "image-inspect-nginx.json")
	if nginxImg["Id"] != nginxOldID {
		t.Fatalf("fixture image id %v", nginxImg["Id"])
	}
	newCfg := jsonCopy(t, nginxImg)
	newCfg["Config"].(map[string]any)["Env"] = []any{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.27.1"}
	for _, img := range []*fakeImage{
		{ID: nginxOldID, RepoDigests: []string{"nginx@" + testDigestA}, raw: nginxImg},
		{ID: nginxNewID, RepoDigests: []string{"nginx@" + testDigestB}, raw: newCfg},
		{ID: redisID, RepoDigests: []string{"redis@" + redisDig}},
		{ID: appOldID, RepoDigests: []string{"ghcr.io/acme/app@" + appOldDig}},
		{ID: appNewID, RepoDigests: []string{"ghcr.io/acme/app@" + appNewDig}},
		{ID: localID},
	} {
		eng.images[img.ID] = img
	}
	eng.tags["docker.io/library/nginx:1.27"] = nginxOldID
	eng.tags["docker.io/library/redis:latest"] = redisID
	eng.tags["ghcr.io/acme/app:v1"] = appNewID // pulled already, app not recreated
	eng.tags["docker.io/library/myapp:dev"] = localID
	webRaw := dockerFixtureMap(t, "container-inspect-nginx.json")
	eng.containers = []*fakeContainer{
		{ID: webID, Name: "web", ConfigImage: "nginx:1.27", ImageID: nginxOldID, Running: true, raw: webRaw},
		{ID: fakeHex("web2"), Name: "web2", ConfigImage: "docker.io/library/nginx:1.27", ImageID: nginxOldID, Running: true},
		{ID: fakeHex("web3"), Name: "web3", ConfigImage: "nginx:1.27", ImageID: nginxNewID, Running: true},
		{ID: fakeHex("cache"), Name: "cache", ConfigImage: "redis", ImageID: redisID, Running: true},
		{ID: fakeHex("app"), Name: "app", ConfigImage: "ghcr.io/acme/app:v1", ImageID: appOldID, Running: true},
		{ID: fakeHex("pinned"), Name: "pinned", ConfigImage: "nginx:1.27@" + testDigestA, ImageID: nginxOldID, Running: true},
		{ID: fakeHex("dev"), Name: "dev", ConfigImage: "myapp:dev", ImageID: localID, Running: true},
		{ID: fakeHex("byid"), Name: "byid", ConfigImage: nginxOldID[7:19], ImageID: nginxOldID, Running: true},
		{ID: fakeHex("stopped"), Name: "stopped", ConfigImage: "nginx:1.27", ImageID: nginxOldID, Running: false},
	}
	eng.pulls["docker.io/library/nginx:1.27"] = fakePull{stream: dockerFixture(t, "pull-ok.jsonl"), newImage: eng.images[nginxNewID]}

	reg := newFakeRegistry(t)
	reg.digests["library/nginx:1.27"] = testDigestB
	reg.digests["library/redis:latest"] = redisDig
	reg.digests["acme/app:v1"] = appNewDig
	reg.private["acme/app"] = registryAuth{Username: "acme-bot", Password: "ghp_secrettoken"}

	opts.DockerSocket = sock
	opts.DockerConfig = filepath.Join("testdata", "docker", "config.json")
	d := NewDocker(&Fake{}, opts)
	d.dockerHost = ""
	var hosts []string
	var sl sleepRecorder
	logs := &lockedBuffer{}
	d.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d.registryBase = reg.base(&hosts)
	d.registryHTTP = reg.srv.Client()
	d.sleep = sl.sleep
	return &dockerWorld{eng: eng, reg: reg, d: d, logs: logs, hosts: &hosts, sleep: &sl}
}

func TestDockerScan(t *testing.T) {
	w := newDockerWorld(t, Options{})
	if w.d.Name() != protocol.PkgDocker || !w.d.Available(context.Background()) {
		t.Fatal("not available with the socket present")
	}
	ups, err := w.d.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ups = Clean(w.d.Name(), ups)
	if len(ups) != 2 {
		t.Fatalf("got %d updates: %+v", len(ups), ups)
	}
	app, ng := ups[0], ups[1]
	if ng.PackageName != "nginx:1.27" || ng.CurrentVersion != testDigestA || ng.AvailableVersion != testDigestB ||
		ng.Severity != protocol.SevUnknown || ng.Source != "docker.io" {
		t.Errorf("nginx: %+v", ng)
	}
	if ng.Metadata["containers"] != "web, web2" || ng.Metadata["image_id"] != nginxOldID || ng.Metadata["new_image_pulled"] != "" ||
		ng.Metadata["repository"] != "library/nginx" || ng.Metadata["tag"] != "1.27" {
		t.Errorf("nginx metadata: %v", ng.Metadata)
	}
	if app.PackageName != "ghcr.io/acme/app:v1" || app.CurrentVersion != appOldDig || app.AvailableVersion != appNewDig ||
		app.Metadata["containers"] != "app" || app.Metadata["new_image_pulled"] != "true" {
		t.Errorf("app: %+v", app)
	}

	reg := w.reg
	reg.mu.Lock()
	defer reg.mu.Unlock()
	// One answered HEAD per distinct image, however many containers use it.
	for key, n := range map[string]int{"library/nginx:1.27": 1, "library/redis:latest": 1, "acme/app:v1": 1} {
		if reg.headOK[key] != n {
			t.Errorf("%s answered %d times, want %d (all: %v)", key, reg.headOK[key], n, reg.headOK)
		}
	}
	total := 0
	for _, n := range reg.heads {
		total += n
	}
	// Plus at most one 401 per registry (the challenge is remembered).
	if total > 3+2 {
		t.Errorf("%d HEADs: %v", total, reg.heads)
	}
	if len(reg.others) != 0 {
		t.Errorf("requests beyond HEAD and token: %v", reg.others)
	}
	if !slices.Contains(*w.hosts, "registry-1.docker.io") || !slices.Contains(*w.hosts, "ghcr.io") {
		t.Errorf("api hosts %v", *w.hosts)
	}

	logs := w.logs.String()
	for _, want := range []string{"pinned by digest", "container=pinned", "container=dev", "container=byid"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{"ghp_secrettoken", "YWNtZS1ib3Q6", "hubpass"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a credential")
		}
	}
	// The engine was only read.
	for _, c := range w.eng.calls {
		if !strings.HasPrefix(c, "GET ") {
			t.Errorf("scan made a write call: %s", c)
		}
	}
}

func TestDockerScanRegistryErrorsKeepOtherUpdates(t *testing.T) {
	w := newDockerWorld(t, Options{})
	delete(w.reg.digests, "library/redis:latest")                             // tag gone
	w.reg.private["acme/app"] = registryAuth{Username: "x", Password: "nope"} // credentials no longer valid
	ups, err := w.d.Scan(context.Background())
	if err == nil || !errors.Is(err, ErrTagNotFound) || !errors.Is(err, ErrRegistryUnauthorized) {
		t.Fatalf("err %v", err)
	}
	if len(ups) != 1 || ups[0].PackageName != "nginx:1.27" {
		t.Errorf("updates %+v", ups)
	}
	if strings.Contains(err.Error(), "ghp_secrettoken") {
		t.Error("credential in error")
	}
}

func TestDockerScanNoEngine(t *testing.T) {
	d := NewDocker(&Fake{}, Options{DockerSocket: filepath.Join(t.TempDir(), "missing.sock")})
	d.dockerHost = ""
	if d.Available(context.Background()) {
		t.Error("available without a socket")
	}
	if _, err := d.Scan(context.Background()); err == nil || !strings.Contains(err.Error(), "listing containers") {
		t.Errorf("err %v", err)
	}
	d = NewDocker(&Fake{}, Options{})
	d.dockerHost, d.goos = "", "windows"
	if _, err := d.Scan(context.Background()); !errors.Is(err, ErrNpipeUnsupported) {
		t.Errorf("npipe: %v", err)
	}
	d = NewDocker(&Fake{}, Options{})
	d.dockerHost = "tcp://127.0.0.1:2375"
	if !d.Available(context.Background()) {
		t.Error("a configured but unsupported endpoint should be reported by Scan, not skipped")
	}
	if _, err := d.Scan(context.Background()); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("tcp: %v", err)
	}
}

func TestResolveDockerEndpoint(t *testing.T) {
	tests := []struct {
		opt, env, goos string
		want           dockerEndpoint
		err            bool
	}{
		{"", "", "linux", dockerEndpoint{"unix", "/var/run/docker.sock"}, false},
		{"", "", "darwin", dockerEndpoint{"unix", "/var/run/docker.sock"}, false},
		{"", "", "windows", dockerEndpoint{"npipe", `\\.\pipe\docker_engine`}, false},
		{"/run/user/1000/docker.sock", "unix:///x", "linux", dockerEndpoint{"unix", "/run/user/1000/docker.sock"}, false},
		{"", "unix:///run/podman/podman.sock", "linux", dockerEndpoint{"unix", "/run/podman/podman.sock"}, false},
		{"unix:///a.sock", "", "linux", dockerEndpoint{"unix", "/a.sock"}, false},
		{"", "npipe:////./pipe/docker_engine", "windows", dockerEndpoint{"npipe", `\\.\pipe\docker_engine`}, false},
		{"", "tcp://10.0.0.1:2376", "linux", dockerEndpoint{}, true},
		{"ssh://user@host", "", "linux", dockerEndpoint{}, true},
		{"unix://", "", "linux", dockerEndpoint{}, true},
	}
	for _, tt := range tests {
		got, err := resolveDockerEndpoint(tt.opt, tt.env, tt.goos)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("(%q, %q, %s) = %+v, %v", tt.opt, tt.env, tt.goos, got, err)
		}
	}
}

func TestDockerInstallPullOnly(t *testing.T) {
	w := newDockerWorld(t, Options{})
	items := []protocol.InstallItem{
		{UpdateID: "u1", PackageType: "docker", PackageName: "nginx:1.27", Version: testDigestB},
		{UpdateID: "u2", PackageType: "docker", PackageName: "nginx; rm -rf /"},
		{UpdateID: "u3", PackageType: "docker", PackageName: "nginx@" + testDigestA},
	}
	res, err := w.d.Install(context.Background(), items, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 3 || res.ExitCode != 1 {
		t.Fatalf("results %+v", res)
	}
	byID := map[string]protocol.InstallItemResult{}
	for _, r := range res.Results {
		byID[r.UpdateID] = r
	}
	if r := byID["u1"]; r.Status != "installed" || r.InstalledVersion != testDigestB || !strings.Contains(r.Message, "web, web2") ||
		!strings.Contains(r.Message, "recreate_containers is off") {
		t.Errorf("u1: %+v", r)
	}
	if byID["u2"].Status != "failed" || byID["u3"].Status != "failed" || !strings.Contains(byID["u3"].Message, "pinned") {
		t.Errorf("refused: %+v %+v", byID["u2"], byID["u3"])
	}
	if len(res.Changes) != 1 || res.Changes[0].FromVersion != testDigestA || res.Changes[0].ToVersion != testDigestB {
		t.Errorf("changes %+v", res.Changes)
	}
	if !strings.Contains(res.Output, "Status: Downloaded newer image for nginx:1.27") || strings.Contains(res.Output, "Downloading") {
		t.Errorf("output %q", res.Output)
	}
	e := w.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	var writes []string
	for _, c := range e.calls {
		if !strings.HasPrefix(c, "GET ") {
			writes = append(writes, c)
		}
	}
	if !slices.Equal(writes, []string{"POST /images/create?fromImage=docker.io%2Flibrary%2Fnginx&tag=1.27"}) {
		t.Errorf("write calls %v", writes)
	}
	// Docker Hub credentials from config.json travel to the daemon.
	raw, err := base64.URLEncoding.DecodeString(e.regAuth[0])
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]string
	if err := json.Unmarshal(raw, &a); err != nil || a["username"] != "hubuser" || a["serveraddress"] != "https://index.docker.io/v1/" {
		t.Errorf("X-Registry-Auth %v %v", a, err)
	}
	for _, c := range e.containers {
		if c.Name == "web" && c.ImageID != nginxOldID {
			t.Error("web changed without recreate_containers")
		}
	}
}

func TestDockerInstallPullError(t *testing.T) {
	w := newDockerWorld(t, Options{RecreateContainers: true})
	w.eng.pulls["ghcr.io/acme/app:v1"] = fakePull{stream: dockerFixture(t, "pull-error.jsonl")}
	res, err := w.d.Install(context.Background(), []protocol.InstallItem{
		{UpdateID: "a", PackageName: "ghcr.io/acme/app:v1"},
		{UpdateID: "b", PackageName: "redis:7"}, // the daemon refuses: no such pull
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 1 || len(res.Results) != 2 || len(res.Changes) != 0 {
		t.Fatalf("%+v", res)
	}
	if r := res.Results[0]; r.Status != "failed" || !strings.Contains(r.Message, "no space left on device") {
		t.Errorf("a: %+v", r)
	}
	if r := res.Results[1]; r.Status != "failed" || !strings.Contains(r.Message, "pull access denied") {
		t.Errorf("b: %+v", r)
	}
	raw, _ := base64.URLEncoding.DecodeString(w.eng.regAuth[0])
	if !strings.Contains(string(raw), `"serveraddress":"ghcr.io"`) || !strings.Contains(string(raw), `"username":"acme-bot"`) {
		t.Errorf("X-Registry-Auth %s", raw)
	}
	if strings.Contains(res.Output, "ghp_secrettoken") || strings.Contains(w.logs.String(), "ghp_secrettoken") {
		t.Error("credential leaked")
	}
}

func TestDockerInstallDryRun(t *testing.T) {
	for _, recreate := range []bool{false, true} {
		t.Run(fmt.Sprint("recreate=", recreate), func(t *testing.T) {
			w := newDockerWorld(t, Options{RecreateContainers: recreate})
			res, err := w.d.Install(context.Background(), []protocol.InstallItem{
				{UpdateID: "u1", PackageName: "nginx:1.27", Version: testDigestB},
				{UpdateID: "u2", PackageName: "Bad Name"},
			}, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) != 1 || res.Changes[0].PackageName != "nginx:1.27" || res.Changes[0].FromVersion != testDigestA ||
				res.Changes[0].ToVersion != testDigestB || len(res.Extras) != 0 {
				t.Errorf("changes %+v", res.Changes)
			}
			if len(res.Results) != 1 || res.Results[0].UpdateID != "u2" || res.Results[0].Status != "failed" {
				t.Errorf("results %+v", res.Results)
			}
			want := "containers keep running the current image"
			if recreate {
				want = "would recreate containers: web, web2"
			}
			if !strings.Contains(res.Output, "would pull nginx:1.27") || !strings.Contains(res.Output, want) {
				t.Errorf("output %q", res.Output)
			}
			for _, c := range w.eng.calls {
				if !strings.HasPrefix(c, "GET ") {
					t.Errorf("dry run wrote: %s", c)
				}
			}
		})
	}
}

func TestDockerInstallRecreate(t *testing.T) {
	w := newDockerWorld(t, Options{RecreateContainers: true})
	res, err := w.d.Install(context.Background(), []protocol.InstallItem{{UpdateID: "u1", PackageName: "nginx:1.27", Version: testDigestB}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Results[0].Status != "installed" || !strings.Contains(res.Results[0].Message, "recreated: web, web2") {
		t.Fatalf("%+v\n%s", res.Results, res.Output)
	}
	e := w.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	names := map[string]*fakeContainer{}
	for _, c := range e.containers {
		names[c.Name] = c
	}
	for _, n := range []string{"web", "web2", "web3"} {
		c := names[n]
		if c == nil || !c.Running || c.ImageID != nginxNewID {
			t.Errorf("%s: %+v", n, c)
		}
	}
	if names["web"].ID == webID || names["web-redflag-old"] != nil || names["web2-redflag-old"] != nil {
		t.Error("old containers left behind")
	}
	// The order of the replacement for web.
	var seq []string
	for _, c := range e.calls {
		if strings.Contains(c, webID) || strings.Contains(c, "name=web&") || strings.HasSuffix(c, "name=web") ||
			strings.Contains(c, "/networks/") || strings.Contains(c, fakeHex("created-1")) {
			seq = append(seq, strings.Split(strings.ReplaceAll(strings.ReplaceAll(c, webID, "OLD"), fakeHex("created-1"), "NEW"), "?")[0])
		}
	}
	wantSeq := []string{"GET /containers/OLD/json", "GET /containers/OLD/json", "POST /containers/OLD/stop", "POST /containers/OLD/rename",
		"POST /containers/create", "POST /networks/frontend/connect", "POST /containers/NEW/start", "DELETE /containers/OLD"}
	if !slices.Equal(seq, wantSeq) {
		t.Errorf("sequence\n got %v\nwant %v", seq, wantSeq)
	}
	if !slices.Contains(e.calls, "POST /containers/"+webID+"/stop?t=20") {
		t.Errorf("the container's StopTimeout was not used: %v", e.calls)
	}

	body := e.created[0]
	if body["Image"] != "nginx:1.27" {
		t.Errorf("image %v", body["Image"])
	}
	if env := body["Env"]; !reflect.DeepEqual(env, []any{"TZ=Europe/Berlin"}) {
		t.Errorf("env %v: the old image's defaults must not be pinned", env)
	}
	for _, k := range []string{"Cmd", "Entrypoint", "StopSignal", "Hostname"} {
		if _, ok := body[k]; ok {
			t.Errorf("%s copied from the old image: %v", k, body[k])
		}
	}
	if !reflect.DeepEqual(body["Labels"], map[string]any{"com.example.role": "frontend"}) {
		t.Errorf("labels %v", body["Labels"])
	}
	if !reflect.DeepEqual(body["ExposedPorts"], map[string]any{"443/tcp": map[string]any{}}) {
		t.Errorf("exposed ports %v", body["ExposedPorts"])
	}
	hc := body["HostConfig"].(map[string]any)
	if !reflect.DeepEqual(hc["Binds"], []any{"/srv/www:/usr/share/nginx/html:ro"}) {
		t.Errorf("binds %v", hc["Binds"])
	}
	wantMount := map[string]any{"Type": "volume", "Source": fakeHex("anon-cache"), "Target": "/var/cache/nginx", "ReadOnly": false}
	if !reflect.DeepEqual(hc["Mounts"], []any{wantMount}) {
		t.Errorf("anonymous volume not carried over: %v", hc["Mounts"])
	}
	eps := body["NetworkingConfig"].(map[string]any)["EndpointsConfig"].(map[string]any)
	if len(eps) != 1 || eps["bridge"] == nil {
		t.Errorf("endpoints %v", eps)
	}
	if len(e.connects) != 1 {
		t.Fatalf("connects %v", e.connects)
	}
	fe := e.connects[0]["EndpointConfig"].(map[string]any)
	if e.connects[0]["network"] != "frontend" || !reflect.DeepEqual(fe["Aliases"], []any{"web"}) ||
		!reflect.DeepEqual(fe["IPAMConfig"], map[string]any{"IPv4Address": "10.77.0.10"}) || fe["IPAddress"] != nil {
		t.Errorf("frontend endpoint %v", e.connects[0])
	}
}

func TestDockerInstallRecreateRollback(t *testing.T) {
	w := newDockerWorld(t, Options{RecreateContainers: true})
	w.eng.failStart = true
	res, err := w.d.Install(context.Background(), []protocol.InstallItem{{UpdateID: "u1", PackageName: "nginx:1.27"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Results[0]
	if r.Status != "failed" || res.ExitCode != 1 || !strings.Contains(r.Message, "port is already allocated") || !strings.Contains(r.Message, "rolled back") {
		t.Fatalf("%+v", r)
	}
	e := w.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.containers {
		if isCreated(c) {
			t.Errorf("new container %s left behind", c.Name)
		}
		if strings.HasSuffix(c.Name, "-redflag-old") {
			t.Errorf("old container not renamed back: %s", c.Name)
		}
	}
	web := e.find("web")
	if web == nil || web.ID != webID || !web.Running || web.ImageID != nginxOldID {
		t.Errorf("web after rollback: %+v", web)
	}
}

func TestPlanRecreate(t *testing.T) {
	ctr := dockerFixture(t, "container-inspect-nginx.json")
	img := dockerFixture(t, "image-inspect-nginx.json")
	p, err := planRecreate([]byte(ctr), []byte(img))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web" || p.OldID != webID || !p.WasRunning || p.StopTimeout != 20 || !slices.Equal(p.ExtraKeys, []string{"frontend"}) {
		t.Errorf("plan %+v", p)
	}
	if _, err := json.Marshal(p.Body); err != nil {
		t.Fatal(err)
	}

	mod := func(f func(m map[string]any)) []byte {
		m := dockerFixtureMap(t, "container-inspect-nginx.json")
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name string
		ctr  []byte
		err  string
		f    func(recreatePlan) bool
	}{
		{name: "swarm task", ctr: mod(func(m map[string]any) {
			m["Config"].(map[string]any)["Labels"] = map[string]any{"com.docker.swarm.service.id": "x"}
		}), err: "swarm"},
		{name: "host network", ctr: mod(func(m map[string]any) { m["HostConfig"].(map[string]any)["NetworkMode"] = "host" }),
			f: func(p recreatePlan) bool { return p.Body["NetworkingConfig"] == nil && len(p.ExtraKeys) == 0 }},
		{name: "container network", ctr: mod(func(m map[string]any) { m["HostConfig"].(map[string]any)["NetworkMode"] = "container:abc" }),
			f: func(p recreatePlan) bool { return p.Body["NetworkingConfig"] == nil }},
		{name: "user network primary", ctr: mod(func(m map[string]any) { m["HostConfig"].(map[string]any)["NetworkMode"] = "frontend" }),
			f: func(p recreatePlan) bool { return slices.Equal(p.ExtraKeys, []string{"bridge"}) }},
		{name: "bad network name", ctr: mod(func(m map[string]any) {
			m["NetworkSettings"].(map[string]any)["Networks"].(map[string]any)["../x"] = map[string]any{}
		}), err: "network name"},
		{name: "bad container name", ctr: mod(func(m map[string]any) { m["Name"] = "/a/../b" }), err: "bad name"},
		{name: "no host config", ctr: mod(func(m map[string]any) { delete(m, "HostConfig") }), err: "HostConfig"},
		{name: "stopped", ctr: mod(func(m map[string]any) { m["State"] = map[string]any{"Running": false} }),
			f: func(p recreatePlan) bool { return !p.WasRunning }},
		{name: "bind covers the volume", ctr: mod(func(m map[string]any) {
			m["HostConfig"].(map[string]any)["Binds"] = []any{"/srv/cache:/var/cache/nginx"}
		}), f: func(p recreatePlan) bool {
			_, ok := p.Body["HostConfig"].(map[string]json.RawMessage)["Mounts"]
			return !ok
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planRecreate(tt.ctr, []byte(img))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.f(p) {
				t.Errorf("plan %+v", p)
			}
		})
	}
}

func TestParseDockerFixtures(t *testing.T) {
	list, err := parseContainerList([]byte(dockerFixture(t, "containers.json")))
	if err != nil || len(list) != 3 || list[0].Names[0] != "/web" || list[2].State != "exited" {
		t.Fatalf("list %+v %v", list, err)
	}
	ci, err := parseContainerInspect([]byte(dockerFixture(t, "container-inspect-nginx.json")))
	if err != nil || ci.Name != "web" || ci.ConfigImage != "nginx:1.27" || ci.ImageID != nginxOldID || !ci.Running {
		t.Fatalf("inspect %+v %v", ci, err)
	}
	ii, err := parseImageInspect([]byte(dockerFixture(t, "image-inspect-nginx.json")))
	if err != nil || ii.ID != nginxOldID || !slices.Equal(ii.RepoDigests, []string{"nginx@" + testDigestA}) {
		t.Fatalf("image %+v %v", ii, err)
	}
	bad := []struct {
		name string
		f    func([]byte) error
		in   string
	}{
		{"list: bad id", func(b []byte) error { _, err := parseContainerList(b); return err }, `[{"Id":"../../x"}]`},
		{"list: not a list", func(b []byte) error { _, err := parseContainerList(b); return err }, `{"Id":"x"}`},
		{"inspect: bad image", func(b []byte) error { _, err := parseContainerInspect(b); return err }, `{"Id":"` + webID + `","Name":"/w","Image":"x","Config":{},"State":{}}`},
		{"inspect: bad name", func(b []byte) error { _, err := parseContainerInspect(b); return err }, `{"Id":"` + webID + `","Name":"/w w","Image":"` + nginxOldID + `","Config":{},"State":{}}`},
		{"inspect: no config", func(b []byte) error { _, err := parseContainerInspect(b); return err }, `{"Id":"` + webID + `","Name":"/w","Image":"` + nginxOldID + `"}`},
		{"image: bad id", func(b []byte) error { _, err := parseImageInspect(b); return err }, `{"Id":"sha256:zz"}`},
	}
	for _, tt := range bad {
		if err := tt.f([]byte(tt.in)); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestParsePullStream(t *testing.T) {
	tests := []struct {
		file, in string
		digest   string
		err      string
	}{
		{file: "pull-ok.jsonl", digest: testDigestB},
		{file: "pull-uptodate.jsonl", digest: testDigestA},
		{file: "pull-error.jsonl", err: "no space left on device"},
		{in: `{"errorDetail":{"message":"manifest unknown"}}`, err: "manifest unknown"},
		{in: `{"status":"Pulling"}{"status":`, err: "stream"},
		{in: ``, err: "empty"},
		{in: `{"status":"Digest: sha256:nothex"}`},
	}
	for _, tt := range tests {
		in := tt.in
		if tt.file != "" {
			in = dockerFixture(t, tt.file)
		}
		res, err := parsePullStream(strings.NewReader(in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s%s: err %v, want %q", tt.file, tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || res.Digest != tt.digest {
			t.Errorf("%s%s: %+v, %v", tt.file, tt.in, res, err)
		}
	}
}

func TestRegistryAuthHeader(t *testing.T) {
	auths := map[string]registryAuth{"ghcr.io": {Username: "u", Password: "p"}}
	if h := registryAuthHeader(mustParseRef(t, "nginx"), auths); h != "" {
		t.Errorf("no creds: %q", h)
	}
	raw, err := base64.URLEncoding.DecodeString(registryAuthHeader(mustParseRef(t, "ghcr.io/a/b:1"), auths))
	if err != nil || string(raw) != `{"password":"p","serveraddress":"ghcr.io","username":"u"}` {
		t.Errorf("%s %v", raw, err)
	}
}

func FuzzParseDockerContainers(f *testing.F) {
	img := dockerFixture(f, "image-inspect-nginx.json")
	for _, name := range []string{"containers.json", "container-inspect-nginx.json", "image-inspect-nginx.json"} {
		f.Add([]byte(dockerFixture(f, name)), []byte(img))
	}
	f.Add([]byte(`[{"Id":"`+webID+`","Names":null}]`), []byte(`{}`))
	f.Add([]byte(`{"Id":"`+webID+`","Name":"/w","Image":"`+nginxOldID+`","Config":{"Env":null,"Labels":{"a":"b"}},"HostConfig":{"Mounts":{}},"State":{"Running":true}}`), []byte(`{"Config":null}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if list, err := parseContainerList(a); err == nil {
			for _, c := range list {
				if !containerIDRe.MatchString(c.ID) {
					t.Fatalf("bad id %q", c.ID)
				}
			}
		}
		if ci, err := parseContainerInspect(a); err == nil {
			if !containerNameRe.MatchString(ci.Name) || !imageIDRe.MatchString(ci.ImageID) {
				t.Fatalf("bad inspect %+v", ci)
			}
		}
		if ii, err := parseImageInspect(b); err == nil && !imageIDRe.MatchString(ii.ID) {
			t.Fatalf("bad image %+v", ii)
		}
		if p, err := planRecreate(a, b); err == nil {
			if _, err := json.Marshal(p.Body); err != nil {
				t.Fatalf("plan body does not encode: %v", err)
			}
			for _, n := range p.ExtraKeys {
				if !networkNameRe.MatchString(n) {
					t.Fatalf("bad network %q", n)
				}
			}
		}
	})
}

func FuzzParsePullStream(f *testing.F) {
	for _, name := range []string{"pull-ok.jsonl", "pull-uptodate.jsonl", "pull-error.jsonl"} {
		f.Add([]byte(dockerFixture(f, name)))
	}
	f.Add([]byte(`{"status":"Digest: ` + testDigestA + `"}{"error":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := parsePullStream(bytes.NewReader(b))
		if err == nil && res.Digest != "" && !digestRe.MatchString(res.Digest) {
			t.Fatalf("bad digest %q", res.Digest)
		}
		if len(res.Lines) > 100 {
			t.Fatalf("%d lines kept", len(res.Lines))
		}
	})
}
