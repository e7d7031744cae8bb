// Package client is the HTTP client of RedFlag's API. This file and
// agent.go hold the agent protocol (SPEC §4): registration, token renewal,
// the check-in (long-poll), command results and reports.
//
// The client keeps no package-level state: every setting is on the Client,
// and the agent's credentials are set with SetCredentials (they change when
// the token is renewed).
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/version"
)

// Defaults for Options.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultLongPollMargin = 15 * time.Second
	// MaxLongPollWait is the largest ?wait= the server accepts (SPEC §4).
	MaxLongPollWait = 60
)

// Response body limits: a check-in can carry many commands, anything else is small.
const (
	maxCheckInBody = 16 << 20
	maxBody        = 1 << 20
	maxErrorBody   = 64 << 10
)

// ErrCommandGone means the server answered a result with 404 or 409 and a
// SPEC error body: it does not know the command (any more) or already holds a
// different result for it. The result can never be delivered; drop it.
var ErrCommandGone = errors.New("client: the server no longer accepts a result for this command")

// APIError is an HTTP answer other than the expected success status.
type APIError struct {
	Method     string
	Path       string
	StatusCode int
	// Code and Message come from the SPEC §3 error body; Code is empty when
	// the answer had no such body (a proxy's error page, a route the server
	// does not have).
	Code    string
	Message string
	// RetryAfter is the server's Retry-After delay (429, 503), 0 if none.
	RetryAfter time.Duration
	RequestID  string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.RequestID != "" {
		b.WriteString(" [request " + e.RequestID + "]")
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later without any
// change on the agent's side: rate limiting, server errors, timeouts.
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout || e.StatusCode >= 500
}

// StatusCode returns the HTTP status of err when it is (or wraps) an
// *APIError, else 0.
func StatusCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

// NetworkError is a request that got no HTTP answer: DNS, connection,
// TLS, timeout, or a response that could not be read.
type NetworkError struct {
	Method string
	Path   string
	Err    error
}

func (e *NetworkError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Method, e.Path, e.Err)
}

func (e *NetworkError) Unwrap() error { return e.Err }

// Options configure a Client. The zero value is usable.
type Options struct {
	// HTTPClient carries the requests; nil means a client with a cloned
	// default transport (proxy from the environment, TLS 1.2 or later).
	// Its Timeout should be 0: each call sets its own deadline.
	HTTPClient *http.Client
	// MachineID is sent as X-Machine-ID on renewal and agent routes.
	MachineID string
	// AgentVersion is sent as X-Agent-Version; default version.Version.
	AgentVersion string
	// RequestTimeout bounds each call except the long-poll; default 30 s.
	RequestTimeout time.Duration
	// LongPollMargin is added to the wait of a long-poll check-in to get its
	// timeout; default 15 s.
	LongPollMargin time.Duration
}

// Client talks to one RedFlag server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	hc        *http.Client
	machineID string
	agentVer  string
	timeout   time.Duration
	margin    time.Duration

	mu      sync.RWMutex
	agentID string
	token   string
}

// New returns a client of the server at serverURL (http or https, with an
// optional path prefix; no query or fragment).
func New(serverURL string, o Options) (*Client, error) {
	u, err := ParseServerURL(serverURL)
	if err != nil {
		return nil, err
	}
	c := &Client{base: u, hc: o.HTTPClient, machineID: o.MachineID, agentVer: o.AgentVersion,
		timeout: o.RequestTimeout, margin: o.LongPollMargin}
	if c.hc == nil {
		c.hc = DefaultHTTPClient()
	}
	if c.agentVer == "" {
		c.agentVer = version.Version
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.margin <= 0 {
		c.margin = DefaultLongPollMargin
	}
	return c, nil
}

// ParseServerURL checks and normalises a server URL: scheme http or https,
// a host, no query, fragment or user info; a trailing slash is dropped.
func ParseServerURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("the server URL is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("the server URL %q cannot be parsed: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the server URL %q must start with https:// (or http://)", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("the server URL %q has no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("the server URL %q must not carry a user, query or fragment", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// DefaultHTTPClient returns the client New uses when Options.HTTPClient is
// nil.
func DefaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.MinVersion = tls.VersionTLS12
	tr.MaxIdleConnsPerHost = 2
	return &http.Client{Transport: tr}
}

// ServerURL returns the normalised server URL.
func (c *Client) ServerURL() string { return c.base.String() }

// SetCredentials sets the agent id and JWT used on agent routes.
func (c *Client) SetCredentials(agentID, token string) {
	c.mu.Lock()
	c.agentID, c.token = agentID, token
	c.mu.Unlock()
}

// AgentID returns the agent id set by SetCredentials.
func (c *Client) AgentID() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.agentID
}

func (c *Client) credentials() (string, string, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.agentID == "" || c.token == "" {
		return "", "", errors.New("client: no agent credentials set (register the agent first)")
	}
	return c.agentID, c.token, nil
}

// request describes one call.
type request struct {
	method  string
	path    string // escaped path below the base URL, starting with /
	query   url.Values
	body    any
	bearer  string
	machine bool // send X-Machine-ID
	timeout time.Duration
	want    int // the success status
	out     any // decoded on success when non-nil
	limit   int64
}

func (c *Client) do(ctx context.Context, r request) error {
	if r.timeout <= 0 {
		r.timeout = c.timeout
	}
	if r.limit <= 0 {
		r.limit = maxBody
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	target := c.base.String() + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("client: encoding %s %s: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return fmt.Errorf("client: building %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "redflag-agent/"+c.agentVer)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.machine {
		req.Header.Set(protocol.HeaderMachineID, c.machineID)
		req.Header.Set(protocol.HeaderAgentVersion, c.agentVer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &NetworkError{Method: r.method, Path: r.path, Err: stripURL(err)}
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
	}()
	if resp.StatusCode != r.want {
		return readAPIError(r.method, r.path, resp)
	}
	if r.out == nil {
		return nil
	}
	lr := &io.LimitedReader{R: resp.Body, N: r.limit + 1}
	b, err := io.ReadAll(lr)
	if err != nil {
		return &NetworkError{Method: r.method, Path: r.path, Err: fmt.Errorf("reading the response: %w", stripURL(err))}
	}
	if int64(len(b)) > r.limit {
		return &NetworkError{Method: r.method, Path: r.path, Err: fmt.Errorf("the response is larger than %d bytes", r.limit)}
	}
	if err := json.Unmarshal(b, r.out); err != nil {
		return &NetworkError{Method: r.method, Path: r.path, Err: fmt.Errorf("the response is not the expected JSON: %w", err)}
	}
	return nil
}

// stripURL unwraps *url.Error, whose text repeats the full URL; the
// request's method and path are named by NetworkError instead.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func readAPIError(method, path string, resp *http.Response) *APIError {
	e := &APIError{Method: method, Path: path, StatusCode: resp.StatusCode,
		RequestID: resp.Header.Get(protocol.HeaderRequestID)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb protocol.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
		return e
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	e.Message = strings.ToValidUTF8(strings.Join(strings.Fields(msg), " "), "?")
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// IsTimeout reports whether err is a deadline or network timeout.
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
