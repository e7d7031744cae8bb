package scanner

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The registry side of the docker scanner: the current digest of a tag,
// read with one HEAD request per image reference. The standard library is
// enough for that (a HEAD, an optional token GET, and config.json): it
// keeps go-containerregistry and its dependency tree out of the agent
// binary, and a HEAD is what keeps us under Docker Hub's pull limits
// (HEAD requests do not count; GET manifest would).

// manifestAccept lists every manifest type we accept, multi-platform
// indexes first: the digest a registry answers must be the one Docker
// records in RepoDigests when it pulls the tag, which is the index digest
// for a multi-platform image.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
}, ", ")

const (
	registryRequestTimeout = 30 * time.Second
	registryMaxRetries     = 3
	// registryMaxWait bounds one Retry-After: a registry asking for more
	// is answered with an error (the next scan retries), not a long sleep.
	registryMaxWait    = 60 * time.Second
	maxTokenResponse   = 1 << 20
	maxTokenLen        = 16 << 10
	maxRegistryBody    = 64 << 10
	maxWWWAuthenticate = 4 << 10
	maxDockerConfig    = 1 << 20
	userAgent          = "redflag-agent"
)

// ErrRegistryUnauthorized means the registry refused us even after auth.
var ErrRegistryUnauthorized = errors.New("registry refused access")

// ErrTagNotFound means the registry does not know the tag (any more).
var ErrTagNotFound = errors.New("tag not found in registry")

// registryAuth is one registry's credentials from Docker's config.json.
type registryAuth struct {
	Username string
	Password string
}

// String keeps credentials out of any log or error that formats one.
func (registryAuth) String() string { return "registryAuth{redacted}" }

// registryClient resolves tags to digests. One is made per scan, so its
// token cache never outlives the scan.
type registryClient struct {
	hc *http.Client
	// base maps a registry API host to the URL the API answers at; tests
	// point it at a loopback server. Every URL it returns is checked by
	// checkRegistryURL.
	base  func(apiHost string) (*url.URL, error)
	auths map[string]registryAuth
	sleep func(ctx context.Context, d time.Duration) error
	// timeout bounds each request (registryRequestTimeout when zero).
	timeout time.Duration
	// tokens caches "Bearer …"/"Basic …" per registry and scope.
	tokens map[string]string
	// challenges remembers each registry's bearer challenge, so the next
	// repository there gets its token before its first HEAD instead of
	// after a 401: one HEAD per image instead of two.
	challenges map[string]authChallenge
}

func (rc *registryClient) requestTimeout() time.Duration {
	if rc.timeout > 0 {
		return rc.timeout
	}
	return registryRequestTimeout
}

// defaultRegistryBase is https://host: plain HTTP is never used for a real
// registry.
func defaultRegistryBase(apiHost string) (*url.URL, error) {
	return &url.URL{Scheme: "https", Host: apiHost}, nil
}

// newRegistryHTTPClient refuses redirects that downgrade to plain HTTP.
func newRegistryHTTPClient() *http.Client {
	return &http.Client{
		Timeout: registryRequestTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return checkRegistryURL(req.URL)
		},
	}
}

// checkRegistryURL allows https anywhere and http only on loopback (test
// registries on this machine).
func checkRegistryURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("refusing registry URL %q: https required", u.Redacted())
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// digest returns the registry's current digest for ref's tag: one HEAD,
// plus a token request and one more HEAD when the registry asks for auth,
// plus bounded retries on 429.
func (rc *registryClient) digest(ctx context.Context, ref imageRef) (string, error) {
	if ref.Tag == "" {
		return "", fmt.Errorf("%s: no tag to resolve", ref)
	}
	base, err := rc.base(ref.apiHost())
	if err != nil {
		return "", fmt.Errorf("registry for %s: %w", ref.Domain, err)
	}
	if err := checkRegistryURL(base); err != nil {
		return "", err
	}
	target := base.JoinPath("v2", ref.Path, "manifests", ref.Tag)
	cacheKey := ref.apiHost() + " repository:" + ref.Path + ":pull"
	authz := rc.tokens[cacheKey]
	if ch, ok := rc.challenges[ref.apiHost()]; ok && authz == "" {
		// The scope was the other repository's; authorize builds ours.
		ch.Params = maps.Clone(ch.Params)
		delete(ch.Params, "scope")
		if a, err := rc.authorize(ctx, base, ch, ref); err == nil {
			authz = a
			rc.tokens[cacheKey] = a
		}
	}
	triedAuth := false
	for attempt := 0; ; attempt++ {
		resp, err := rc.headManifest(ctx, target, authz)
		if err != nil {
			return "", fmt.Errorf("HEAD %s: %w", ref, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			d := resp.Header.Get("Docker-Content-Digest")
			if !digestRe.MatchString(d) {
				return "", fmt.Errorf("HEAD %s: registry sent no usable Docker-Content-Digest (%q)", ref, cleanText(d, 80))
			}
			return d, nil
		case resp.StatusCode == http.StatusUnauthorized && !triedAuth:
			triedAuth = true
			ch, err := parseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
			if err != nil {
				return "", fmt.Errorf("HEAD %s: %w", ref, err)
			}
			authz, err = rc.authorize(ctx, base, ch, ref)
			if err != nil {
				return "", fmt.Errorf("auth for %s: %w", ref, err)
			}
			rc.tokens[cacheKey] = authz
			if ch.Scheme == "bearer" {
				rc.challenges[ref.apiHost()] = ch
			}
			attempt--
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return "", fmt.Errorf("HEAD %s: %w (HTTP %d)", ref, ErrRegistryUnauthorized, resp.StatusCode)
		case resp.StatusCode == http.StatusNotFound:
			return "", fmt.Errorf("HEAD %s: %w", ref, ErrTagNotFound)
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			wait, ok := retryAfter(resp.Header.Get("Retry-After"), attempt, time.Now())
			if !ok || attempt >= registryMaxRetries {
				return "", fmt.Errorf("HEAD %s: registry rate limit (HTTP %d), gave up after %d retries", ref, resp.StatusCode, attempt)
			}
			if err := rc.sleep(ctx, wait); err != nil {
				return "", fmt.Errorf("HEAD %s: waiting out rate limit: %w", ref, err)
			}
		default:
			return "", fmt.Errorf("HEAD %s: unexpected HTTP %d", ref, resp.StatusCode)
		}
	}
}

// headManifest sends one HEAD and drains the (bounded) body.
func (rc *registryClient) headManifest(ctx context.Context, target *url.URL, authz string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, rc.requestTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, target.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	req.Header.Set("User-Agent", userAgent)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := rc.hc.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxRegistryBody))
	resp.Body.Close()
	return resp, nil
}

// authorize answers a 401 challenge with an Authorization header value.
func (rc *registryClient) authorize(ctx context.Context, base *url.URL, ch authChallenge, ref imageRef) (string, error) {
	cred, haveCred := rc.auths[strings.ToLower(ref.Domain)]
	switch ch.Scheme {
	case "basic":
		if !haveCred {
			return "", fmt.Errorf("%w: registry wants basic credentials and config.json has none for %s", ErrRegistryUnauthorized, ref.Domain)
		}
		return "Basic " + basicAuth(cred), nil
	case "bearer":
	default:
		return "", fmt.Errorf("unsupported auth scheme %q", ch.Scheme)
	}
	realm, err := url.Parse(ch.Params["realm"])
	if err != nil || realm.Host == "" {
		return "", fmt.Errorf("bad bearer realm %q", cleanText(ch.Params["realm"], 200))
	}
	// A plain-HTTP realm is allowed only when the registry itself is a
	// loopback test server; credentials never travel in clear text.
	if err := checkRegistryURL(realm); err != nil || (realm.Scheme == "http" && base.Scheme != "http") {
		return "", fmt.Errorf("refusing token realm %q", realm.Redacted())
	}
	q := realm.Query()
	if s := ch.Params["service"]; s != "" {
		q.Set("service", s)
	}
	scope := ch.Params["scope"]
	if scope == "" {
		scope = "repository:" + ref.Path + ":pull"
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()

	ctx, cancel := context.WithTimeout(ctx, rc.requestTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", userAgent)
	if haveCred {
		req.Header.Set("Authorization", "Basic "+basicAuth(cred))
	}
	resp, err := rc.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: token endpoint answered HTTP %d", ErrRegistryUnauthorized, resp.StatusCode)
	}
	tok, err := parseTokenResponse(body)
	if err != nil {
		return "", err
	}
	return "Bearer " + tok, nil
}

// parseTokenResponse reads {"token": …} or {"access_token": …}.
func parseTokenResponse(body []byte) (string, error) {
	if len(body) > maxTokenResponse {
		return "", errors.New("token response too large")
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" || len(tok) > maxTokenLen {
		return "", errors.New("token response has no usable token")
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return "", errors.New("token contains characters not allowed in a header")
		}
	}
	return tok, nil
}

func basicAuth(a registryAuth) string {
	return base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))
}

// retryAfter is how long to wait before retry number attempt+1: the
// server's Retry-After (seconds or an HTTP date) when it gives one, else
// 1s, 2s, 4s. ok is false when the wait would exceed registryMaxWait.
func retryAfter(h string, attempt int, now time.Time) (time.Duration, bool) {
	wait := time.Second << min(attempt, 6)
	if h = strings.TrimSpace(h); h != "" {
		if secs, err := strconv.Atoi(h); err == nil && secs >= 0 {
			wait = time.Duration(min(secs, 3600)) * time.Second
		} else if t, err := http.ParseTime(h); err == nil {
			wait = max(t.Sub(now), 0)
		}
	}
	return wait, wait <= registryMaxWait
}

// authChallenge is the first challenge of a WWW-Authenticate header.
type authChallenge struct {
	// Scheme is lower case: "bearer", "basic".
	Scheme string
	// Params has lower-case keys: realm, service, scope.
	Params map[string]string
}

// parseWWWAuthenticate parses RFC 7235 challenges and returns the first
// bearer one, else the first one. Malformed headers are errors.
func parseWWWAuthenticate(headers []string) (authChallenge, error) {
	var first *authChallenge
	for _, h := range headers {
		chs, err := parseChallenges(h)
		if err != nil {
			return authChallenge{}, err
		}
		for i := range chs {
			if chs[i].Scheme == "bearer" {
				return chs[i], nil
			}
			if first == nil {
				first = &chs[i]
			}
		}
	}
	if first == nil {
		return authChallenge{}, errors.New("401 without a WWW-Authenticate challenge")
	}
	return *first, nil
}

// parseChallenges parses one header value: scheme [param=value, …] [, scheme …].
func parseChallenges(h string) ([]authChallenge, error) {
	if len(h) > maxWWWAuthenticate {
		return nil, errors.New("WWW-Authenticate header too long")
	}
	var out []authChallenge
	p := &headerLexer{s: h}
	for {
		p.skipSpaceAndCommas()
		if p.done() {
			break
		}
		scheme := p.token()
		if scheme == "" {
			return nil, fmt.Errorf("WWW-Authenticate: expected auth scheme at byte %d", p.i)
		}
		ch := authChallenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
		p.skipSpace()
		for !p.done() {
			save := p.i
			p.skipSpaceAndCommas()
			key := p.token()
			p.skipSpace()
			if key == "" || !p.peek('=') {
				// Either the end or the next challenge's scheme.
				p.i = save
				break
			}
			p.i++ // '='
			p.skipSpace()
			var val string
			if p.peek('"') {
				v, err := p.quoted()
				if err != nil {
					return nil, err
				}
				val = v
			} else {
				val = p.token68()
				if val == "" {
					return nil, fmt.Errorf("WWW-Authenticate: empty value for %q", key)
				}
			}
			if len(ch.Params) >= 16 {
				return nil, errors.New("WWW-Authenticate: too many parameters")
			}
			ch.Params[strings.ToLower(key)] = val
			p.skipSpace()
			if !p.done() && !p.peek(',') {
				return nil, fmt.Errorf("WWW-Authenticate: unexpected %q at byte %d", p.s[p.i], p.i)
			}
		}
		out = append(out, ch)
		if len(out) > 8 {
			return nil, errors.New("WWW-Authenticate: too many challenges")
		}
	}
	if len(out) == 0 {
		return nil, errors.New("WWW-Authenticate: empty")
	}
	return out, nil
}

// headerLexer scans HTTP header tokens; every method advances or stops,
// so parsing always ends.
type headerLexer struct {
	s string
	i int
}

func (l *headerLexer) done() bool       { return l.i >= len(l.s) }
func (l *headerLexer) peek(c byte) bool { return l.i < len(l.s) && l.s[l.i] == c }
func (l *headerLexer) skipSpace() {
	for l.i < len(l.s) && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
}
func (l *headerLexer) skipSpaceAndCommas() {
	for l.i < len(l.s) && (l.s[l.i] == ' ' || l.s[l.i] == '\t' || l.s[l.i] == ',') {
		l.i++
	}
}

// token reads an RFC 7230 token.
func (l *headerLexer) token() string {
	start := l.i
	for l.i < len(l.s) && isTokenChar(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

// token68 reads an unquoted value (token plus the token68 extras "/" and "=").
func (l *headerLexer) token68() string {
	start := l.i
	for l.i < len(l.s) && (isTokenChar(l.s[l.i]) || l.s[l.i] == '/' || l.s[l.i] == '=' || l.s[l.i] == ':') {
		l.i++
	}
	return l.s[start:l.i]
}

// quoted reads a quoted-string with backslash escapes.
func (l *headerLexer) quoted() (string, error) {
	l.i++ // opening quote
	var b strings.Builder
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '"':
			l.i++
			return b.String(), nil
		case c == '\\' && l.i+1 < len(l.s):
			b.WriteByte(l.s[l.i+1])
			l.i += 2
		case c < ' ' && c != '\t' || c == 0x7f:
			return "", fmt.Errorf("WWW-Authenticate: control character at byte %d", l.i)
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return "", errors.New("WWW-Authenticate: unterminated quoted string")
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// dockerConfigPath is where Docker's config.json is: the option, else
// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
func dockerConfigPath(opt string) string {
	if opt != "" {
		return opt
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// loadDockerAuths reads the credentials of config.json. A missing file is
// no credentials, not an error.
func loadDockerAuths(path string) (map[string]registryAuth, error) {
	if path == "" {
		return map[string]registryAuth{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]registryAuth{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDockerConfig+1))
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	auths, err := parseDockerConfig(b)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	return auths, nil
}

// parseDockerConfig reads the "auths" of a Docker config.json: "auth"
// (base64 user:password) or "username"/"password". Keys are normalised
// to registry domains as parseImageRef writes them, so Docker Hub's
// "https://index.docker.io/v1/" becomes "docker.io". Credential helpers
// (credsStore, credHelpers) and identity tokens are not supported: such
// registries are queried anonymously.
func parseDockerConfig(b []byte) (map[string]registryAuth, error) {
	if len(b) > maxDockerConfig {
		return nil, errors.New("config.json too large")
	}
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	out := map[string]registryAuth{}
	// Sorted, so that when two keys name one registry the choice is stable.
	keys := make([]string, 0, len(cfg.Auths))
	for k := range cfg.Auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		a := cfg.Auths[key]
		host := registryKeyHost(key)
		if _, dup := out[host]; dup {
			continue
		}
		if host == "" {
			continue
		}
		var ra registryAuth
		switch {
		case a.Auth != "":
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a.Auth))
			if err != nil {
				// Never echo the value: it is a password.
				return nil, fmt.Errorf("auths[%q].auth is not base64", cleanText(key, 100))
			}
			u, p, ok := strings.Cut(string(raw), ":")
			if !ok || u == "" {
				return nil, fmt.Errorf("auths[%q].auth is not user:password", cleanText(key, 100))
			}
			ra = registryAuth{Username: u, Password: p}
		case a.Username != "":
			ra = registryAuth{Username: a.Username, Password: a.Password}
		default:
			continue // a credential helper's entry, or an identity token
		}
		if strings.ContainsAny(ra.Username+ra.Password, "\r\n\x00") {
			return nil, fmt.Errorf("auths[%q] has control characters", cleanText(key, 100))
		}
		out[host] = ra
	}
	return out, nil
}

// registryKeyHost turns a config.json auths key ("https://index.docker.io/v1/",
// "ghcr.io", "http://localhost:5000") into a registry domain.
func registryKeyHost(key string) string {
	k := strings.TrimSpace(key)
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
	}
	k, _, _ = strings.Cut(k, "/")
	k = strings.ToLower(k)
	if !refDomainRe.MatchString(k) {
		return ""
	}
	switch k {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", dockerHubDomain:
		return dockerHubDomain
	}
	return k
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
