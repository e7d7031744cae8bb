package scanner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// The Engine API side of the docker scanner: a handful of calls over the
// local socket with net/http, no Docker client library.

const (
	defaultDockerSocket = "/var/run/docker.sock"
	defaultDockerPipe   = `\\.\pipe\docker_engine`
	// engineRequestTimeout bounds one short Engine API call.
	engineRequestTimeout = 30 * time.Second
	maxEngineList        = 16 << 20
	maxEngineInspect     = 4 << 20
	maxEngineError       = 64 << 10
	maxPullStream        = 64 << 20
	maxContainers        = 10000
)

var (
	containerIDRe   = regexp.MustCompile(`^[a-f0-9]{64}$`)
	imageIDRe       = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	containerNameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)
	networkNameRe   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)
)

// ErrNpipeUnsupported: the Windows named pipe needs overlapped I/O that the
// standard library does not offer for pipe clients; until a pipe dialer is
// added, a Windows host must expose the engine on a unix socket
// (Options.DockerSocket) for the docker scanner to run.
var ErrNpipeUnsupported = errors.New("docker: the Windows named pipe is not supported yet; set the agent's docker_socket to a unix socket")

// dockerEndpoint is where the Engine API listens.
type dockerEndpoint struct {
	Network string // "unix" or "npipe"
	Address string
}

// resolveDockerEndpoint picks the socket: the option, else DOCKER_HOST,
// else the platform default. Only local endpoints are supported; a tcp://
// DOCKER_HOST (which needs TLS client certificates) is refused.
func resolveDockerEndpoint(opt, dockerHost, goos string) (dockerEndpoint, error) {
	s := opt
	if s == "" {
		s = dockerHost
	}
	if s == "" {
		if goos == "windows" {
			return dockerEndpoint{Network: "npipe", Address: defaultDockerPipe}, nil
		}
		return dockerEndpoint{Network: "unix", Address: defaultDockerSocket}, nil
	}
	switch {
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if p == "" {
			return dockerEndpoint{}, fmt.Errorf("docker endpoint %q: empty socket path", s)
		}
		return dockerEndpoint{Network: "unix", Address: p}, nil
	case strings.HasPrefix(s, "npipe://"):
		p := strings.ReplaceAll(strings.TrimPrefix(s, "npipe://"), "/", `\`)
		return dockerEndpoint{Network: "npipe", Address: p}, nil
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return dockerEndpoint{}, fmt.Errorf("docker endpoint scheme %q is not supported (only the local unix socket)", cleanText(scheme, 20))
	default:
		return dockerEndpoint{Network: "unix", Address: s}, nil
	}
}

// engineClient talks to the Engine API. Paths are unversioned, so the
// daemon answers with its own API version: pinning one breaks on daemons
// that dropped old versions.
type engineClient struct {
	hc *http.Client
}

func newEngineClient(ep dockerEndpoint) (*engineClient, error) {
	if ep.Network != "unix" {
		return nil, ErrNpipeUnsupported
	}
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", ep.Address)
		},
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // pulls answer headers late; contexts bound every call
	}
	return &engineClient{hc: &http.Client{Transport: tr}}, nil
}

// close releases idle connections.
func (c *engineClient) close() {
	c.hc.CloseIdleConnections()
}

// EngineError is a non-2xx answer of the Engine API.
type EngineError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *EngineError) Error() string {
	return fmt.Sprintf("docker engine %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// request sends one call; body, when not nil, is sent as JSON. The caller
// closes the response body of a 2xx answer; others become an *EngineError.
func (c *engineClient) request(ctx context.Context, method, path string, q url.Values, body any, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("docker engine %s %s: encoding body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := url.URL{Scheme: "http", Host: "docker", Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("docker engine %s %s: %w", method, path, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker engine %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxEngineError))
		var m struct {
			Message string `json:"message"`
		}
		msg := string(b)
		if json.Unmarshal(b, &m) == nil && m.Message != "" {
			msg = m.Message
		}
		return nil, &EngineError{Method: method, Path: path, Status: resp.StatusCode, Message: cleanText(msg, 500)}
	}
	return resp, nil
}

// call is request with a timeout, reading at most limit bytes of the answer.
func (c *engineClient) call(ctx context.Context, method, path string, q url.Values, body any, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, engineRequestTimeout)
	defer cancel()
	return c.callNoTimeout(ctx, method, path, q, body, limit)
}

func (c *engineClient) callNoTimeout(ctx context.Context, method, path string, q url.Values, body any, limit int64) ([]byte, error) {
	resp, err := c.request(ctx, method, path, q, body, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("docker engine %s %s: reading answer: %w", method, path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("docker engine %s %s: answer larger than %d bytes", method, path, limit)
	}
	return b, nil
}

// engineContainer is one entry of GET /containers/json.
type engineContainer struct {
	ID    string
	Names []string
	Image string
	State string
}

// parseContainerList parses GET /containers/json.
func parseContainerList(b []byte) ([]engineContainer, error) {
	var raw []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
		Image string   `json:"Image"`
		State string   `json:"State"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("container list: %w", err)
	}
	if len(raw) > maxContainers {
		return nil, fmt.Errorf("container list: %d containers, more than the %d handled", len(raw), maxContainers)
	}
	out := make([]engineContainer, 0, len(raw))
	for _, c := range raw {
		if !containerIDRe.MatchString(c.ID) {
			return nil, fmt.Errorf("container list: bad container id %q", cleanText(c.ID, 80))
		}
		out = append(out, engineContainer{ID: c.ID, Names: c.Names, Image: c.Image, State: c.State})
	}
	return out, nil
}

// containerInfo is what the scanner needs of GET /containers/{id}/json.
type containerInfo struct {
	ID   string
	Name string
	// ImageID is the image the container runs ("sha256:…").
	ImageID string
	// ConfigImage is the reference it was started with (Config.Image).
	ConfigImage string
	Running     bool
	Labels      map[string]string
}

// parseContainerInspect parses GET /containers/{id}/json.
func parseContainerInspect(b []byte) (containerInfo, error) {
	var raw struct {
		ID     string `json:"Id"`
		Name   string `json:"Name"`
		Image  string `json:"Image"`
		Config *struct {
			Image  string            `json:"Image"`
			Labels map[string]string `json:"Labels"`
		} `json:"Config"`
		State *struct {
			Running bool `json:"Running"`
		} `json:"State"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return containerInfo{}, fmt.Errorf("container inspect: %w", err)
	}
	if !containerIDRe.MatchString(raw.ID) {
		return containerInfo{}, fmt.Errorf("container inspect: bad id %q", cleanText(raw.ID, 80))
	}
	if !imageIDRe.MatchString(raw.Image) {
		return containerInfo{}, fmt.Errorf("container inspect %s: bad image id %q", raw.ID[:12], cleanText(raw.Image, 80))
	}
	name := strings.TrimPrefix(raw.Name, "/")
	if !containerNameRe.MatchString(name) {
		return containerInfo{}, fmt.Errorf("container inspect %s: bad name %q", raw.ID[:12], cleanText(raw.Name, 80))
	}
	if raw.Config == nil || raw.State == nil {
		return containerInfo{}, fmt.Errorf("container inspect %s: no Config or State", raw.ID[:12])
	}
	return containerInfo{ID: raw.ID, Name: name, ImageID: raw.Image, ConfigImage: raw.Config.Image,
		Running: raw.State.Running, Labels: raw.Config.Labels}, nil
}

// imageInfo is what the scanner needs of GET /images/{id}/json.
type imageInfo struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
}

// parseImageInspect parses GET /images/{name}/json.
func parseImageInspect(b []byte) (imageInfo, error) {
	var raw struct {
		ID          string   `json:"Id"`
		RepoTags    []string `json:"RepoTags"`
		RepoDigests []string `json:"RepoDigests"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return imageInfo{}, fmt.Errorf("image inspect: %w", err)
	}
	if !imageIDRe.MatchString(raw.ID) {
		return imageInfo{}, fmt.Errorf("image inspect: bad image id %q", cleanText(raw.ID, 80))
	}
	if len(raw.RepoDigests) > 1000 || len(raw.RepoTags) > 1000 {
		return imageInfo{}, errors.New("image inspect: too many repo tags or digests")
	}
	return imageInfo{ID: raw.ID, RepoTags: raw.RepoTags, RepoDigests: raw.RepoDigests}, nil
}

// listContainers returns the running containers.
func (c *engineClient) listContainers(ctx context.Context) ([]engineContainer, error) {
	b, err := c.call(ctx, http.MethodGet, "/containers/json", nil, nil, maxEngineList)
	if err != nil {
		return nil, err
	}
	return parseContainerList(b)
}

func (c *engineClient) inspectContainer(ctx context.Context, id string) (containerInfo, []byte, error) {
	if !containerIDRe.MatchString(id) {
		return containerInfo{}, nil, fmt.Errorf("bad container id %q", cleanText(id, 80))
	}
	b, err := c.call(ctx, http.MethodGet, "/containers/"+id+"/json", nil, nil, maxEngineInspect)
	if err != nil {
		return containerInfo{}, nil, err
	}
	ci, err := parseContainerInspect(b)
	if err == nil && ci.ID != id {
		err = fmt.Errorf("container inspect: asked for %s, got %s", id[:12], ci.ID[:12])
	}
	return ci, b, err
}

// inspectImage inspects by image id or by a reference that parseImageRef
// accepted (its grammar has nothing that needs escaping in a path).
func (c *engineClient) inspectImage(ctx context.Context, name string) (imageInfo, []byte, error) {
	if !imageIDRe.MatchString(name) {
		if _, err := parseImageRef(name); err != nil {
			return imageInfo{}, nil, fmt.Errorf("inspect image: %w", err)
		}
	}
	b, err := c.call(ctx, http.MethodGet, "/images/"+name+"/json", nil, nil, maxEngineInspect)
	if err != nil {
		return imageInfo{}, nil, err
	}
	ii, err := parseImageInspect(b)
	return ii, b, err
}

// pullResult is what a pull's progress stream said.
type pullResult struct {
	// Digest is the digest the daemon reported for the pulled tag.
	Digest string
	// Lines are the stream's non-progress status lines.
	Lines []string
}

// parsePullStream reads the JSON messages of POST /images/create. Any
// error message in the stream makes the pull a failure.
func parsePullStream(r io.Reader) (pullResult, error) {
	var res pullResult
	dec := json.NewDecoder(io.LimitReader(r, maxPullStream))
	for n := 0; ; n++ {
		var m struct {
			Status      string `json:"status"`
			ID          string `json:"id"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("pull progress stream: %w", err)
		}
		if m.Error != "" || m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			msg := m.Error
			if msg == "" {
				msg = m.ErrorDetail.Message
			}
			return res, fmt.Errorf("pull failed: %s", cleanText(msg, 500))
		}
		// Per-layer progress (with an id) is noise in a command result.
		if m.ID != "" || m.Status == "" {
			continue
		}
		if d, ok := strings.CutPrefix(m.Status, "Digest: "); ok && digestRe.MatchString(strings.TrimSpace(d)) {
			res.Digest = strings.TrimSpace(d)
		}
		if len(res.Lines) < 100 {
			res.Lines = append(res.Lines, cleanText(m.Status, 300))
		}
	}
	if len(res.Lines) == 0 {
		return res, errors.New("pull progress stream was empty")
	}
	return res, nil
}

// pull pulls ref (by tag) through the daemon; auth, when not empty, is
// the X-Registry-Auth value (the daemon does not read config.json).
func (c *engineClient) pull(ctx context.Context, ref imageRef, auth string) (pullResult, error) {
	q := url.Values{"fromImage": {ref.Name()}, "tag": {ref.Tag}}
	hdr := http.Header{}
	if auth != "" {
		hdr.Set("X-Registry-Auth", auth)
	}
	resp, err := c.request(ctx, http.MethodPost, "/images/create", q, nil, hdr)
	if err != nil {
		return pullResult{}, err
	}
	defer resp.Body.Close()
	res, err := parsePullStream(resp.Body)
	if err != nil {
		return res, fmt.Errorf("pulling %s: %w", ref.Familiar(), err)
	}
	return res, nil
}
