// Package api is RedFlag's HTTP surface: the router, the middleware (request
// id, logging, metrics, authentication, machine binding, rate limits) and
// the handlers, grouped by resource. Every route is listed in routes.go.
package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/agentbin"
	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/events"
	"github.com/redflaghq/redflag/internal/logging"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/ratelimit"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
)

// Cookie names of a dashboard session.
const (
	SessionCookie = "redflag_session"
	CSRFCookie    = "redflag_csrf"
	CSRFHeader    = "X-CSRF-Token"
)

// AuthKind says who may call a route.
type AuthKind string

// The kinds of SPEC §3.
const (
	AuthPublic AuthKind = "public"
	AuthUser   AuthKind = "user"
	AuthAgent  AuthKind = "agent"
)

// Route describes one registered route; the list drives the router, the
// OpenAPI document and the authorization matrix test.
type Route struct {
	Method   string
	Path     string
	Auth     AuthKind
	Summary  string
	Request  any // zero value of the JSON body type, or nil
	Response any // zero value of the success body type, or nil
	Status   int // success status
}

// Deps are the API's collaborators, passed explicitly.
type Deps struct {
	Store      *store.Store
	Auth       *auth.Service
	SigningKey *signing.Key // the key at start; Keys supersedes it
	// Keys holds the server's signing keys and which is active; nil: a
	// keyring of SigningKey alone.
	Keys *signing.Keyring
	// KeyDir is where POST /api/v1/security/keys/rotate writes new key
	// files (the data dir); empty refuses rotation.
	KeyDir string
	// Stream carries the dashboard's live events (GET /api/v1/events);
	// nil: a stream of this API's own.
	Stream         *events.Stream
	Logger         *slog.Logger
	Metrics        *Metrics
	AgentRateLimit int  // requests per minute per agent; 0 turns it off
	SecureCookies  bool // set the Secure flag (HTTPS deployments)
	MetricsToken   string
	Now            func() time.Time
	// Hub wakes long-polling check-ins when commands are queued.
	Hub *events.Hub
	// DefaultSettings apply to every setting never saved.
	DefaultSettings store.Settings
	// Dashboard answers GET and HEAD requests outside /api/ that match no
	// route (the embedded web UI and its client-side routes); nil: 404.
	Dashboard http.Handler
	// AgentBinaries serves GET /api/v1/downloads/agent/{os}/{arch}; nil: 404.
	AgentBinaries *agentbin.Dir
	// PublicURL is REDFLAG_PUBLIC_URL: the server URL written into install
	// scripts; empty derives it from each request.
	PublicURL string
}

// API is the HTTP handler.
type API struct {
	d            Deps
	mux          *http.ServeMux
	routes       []Route
	agentLimiter *ratelimit.Keyed
	handler      http.Handler
	stopping     chan struct{}
	stopOnce     sync.Once
}

// StopWaiting ends every held long-poll at once (they answer with no
// commands), so a shutdown does not wait for them.
func (a *API) StopWaiting() { a.stopOnce.Do(func() { close(a.stopping) }) }

// New builds the API with every route registered.
func New(d Deps) *API {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Keys == nil && d.SigningKey != nil {
		d.Keys = signing.NewKeyring(d.SigningKey)
	}
	if d.Stream == nil {
		d.Stream = events.NewStream()
	}
	a := &API{d: d, mux: http.NewServeMux(), agentLimiter: ratelimit.New(d.AgentRateLimit, time.Minute), stopping: make(chan struct{})}
	a.registerRoutes()
	a.handler = a.withRequestID(a.withRecover(a.withObserve(http.HandlerFunc(a.dispatch))))
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Routes lists every registered route.
func (a *API) Routes() []Route { return append([]Route(nil), a.routes...) }

func (a *API) public(rt Route, h http.HandlerFunc) {
	rt.Auth = AuthPublic
	a.add(rt, h)
}

func (a *API) user(rt Route, h func(http.ResponseWriter, *http.Request, auth.Principal)) {
	rt.Auth = AuthUser
	a.add(rt, a.requireUser(h))
}

func (a *API) agent(rt Route, h func(http.ResponseWriter, *http.Request, store.AgentAuth)) {
	rt.Auth = AuthAgent
	a.add(rt, a.requireAgent(h))
}

func (a *API) add(rt Route, h http.Handler) {
	if rt.Status == 0 {
		rt.Status = http.StatusOK
	}
	a.routes = append(a.routes, rt)
	a.mux.Handle(rt.Method+" "+rt.Path, h)
}

// dispatch routes through the mux, but answers unknown paths and wrong
// methods in the SPEC error shape instead of the mux's plain text.
func (a *API) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := a.mux.Handler(r)
	if pattern != "" && uncleanDownloadPath(r.URL.Path) {
		// The mux would redirect to the cleaned path; a download or script
		// asked for with "..", "//" or "." segments is refused instead.
		writeError(w, errf(http.StatusNotFound, "not_found", "There is no route %s %s.", r.Method, r.URL.Path))
		return
	}
	if pattern != "" {
		a.mux.ServeHTTP(w, r) // sets r.Pattern and the path values
		return
	}
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if a.d.Dashboard != nil && rec.status != http.StatusMethodNotAllowed && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") {
		a.d.Dashboard.ServeHTTP(w, r)
		return
	}
	if rec.status == http.StatusMethodNotAllowed {
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeError(w, errf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s.", r.Method, r.URL.Path))
		return
	}
	writeError(w, errf(http.StatusNotFound, "not_found", "There is no route %s %s.", r.Method, r.URL.Path))
}

type statusRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return s.body.Write(b) }
func (s *statusRecorder) WriteHeader(code int)        { s.status = code }

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (a *API) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(protocol.HeaderRequestID)
		if !requestIDRe.MatchString(id) {
			id = uuid.NewString()
		}
		w.Header().Set(protocol.HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}

func (a *API) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.d.Logger.ErrorContext(r.Context(), "panic in handler", "panic", v, "stack", string(debug.Stack()))
				writeError(w, errf(http.StatusInternalServerError, "internal", "The server failed; the log has the details under this request's id."))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type observedWriter struct {
	http.ResponseWriter
	status int
}

func (o *observedWriter) WriteHeader(code int) {
	if o.status == 0 {
		o.status = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observedWriter) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	return o.ResponseWriter.Write(b)
}

func (o *observedWriter) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// withObserve logs one line per request and records metrics by route
// pattern. It logs the path but never the query, which may carry a token.
func (a *API) withObserve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ow := &observedWriter{ResponseWriter: w}
		next.ServeHTTP(ow, r)
		d := time.Since(start)
		if ow.status == 0 {
			ow.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if a.d.Metrics != nil {
			a.d.Metrics.observe(route, ow.status, d)
		}
		lvl := slog.LevelInfo
		if ow.status >= 500 {
			lvl = slog.LevelError
		}
		a.d.Logger.Log(r.Context(), lvl, "request", "method", r.Method, "path", r.URL.Path, "route", route,
			"status", ow.status, "duration_ms", float64(d.Microseconds())/1000, "remote", clientIP(r))
	})
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

var errUnauthorized = errf(http.StatusUnauthorized, "unauthorized", "Sign in, or send a valid token in the Authorization header.")

func (a *API) requireUser(h func(http.ResponseWriter, *http.Request, auth.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, fromCookie := bearer(r), false
		if token == "" {
			if c, err := r.Cookie(SessionCookie); err == nil {
				token, fromCookie = c.Value, true
			}
		}
		if token == "" {
			writeError(w, errUnauthorized)
			return
		}
		p, err := a.d.Auth.AuthenticateUser(r.Context(), token)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		// A cookie rides along on cross-site requests; a header cannot be set
		// by another site, so unsafe cookie requests must echo the CSRF token.
		if fromCookie && !safeMethod(r.Method) && !a.d.Auth.CheckCSRF(p.Token.TokenHash, r.Header.Get(CSRFHeader)) {
			writeError(w, errf(http.StatusForbidden, "csrf_failed", "This request needs the %s header from the %s cookie.", CSRFHeader, CSRFCookie))
			return
		}
		h(w, r, p)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (a *API) requireAgent(h func(http.ResponseWriter, *http.Request, store.AgentAuth)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		mid := r.Header.Get(protocol.HeaderMachineID)
		if token == "" || mid == "" {
			writeError(w, errf(http.StatusUnauthorized, "unauthorized", "Agent routes need an agent token (Authorization: Bearer) and the %s header.", protocol.HeaderMachineID))
			return
		}
		if !protocol.ValidMachineID(mid) {
			writeError(w, errInvalidMachineID)
			return
		}
		ag, err := a.d.Auth.AuthenticateAgent(r.Context(), token, mid)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if r.PathValue("id") != ag.ID {
			writeError(w, errf(http.StatusForbidden, "forbidden", "This agent token belongs to another agent."))
			return
		}
		if ok, wait := a.agentLimiter.Allow(ag.ID, a.d.Now()); !ok {
			e := errf(http.StatusTooManyRequests, "rate_limited", "This agent is over its request limit; retry after the Retry-After delay.")
			e.Header = http.Header{"Retry-After": {strconv.Itoa(ratelimit.RetryAfterSeconds(wait))}}
			writeError(w, e)
			return
		}
		h(w, r, ag)
	})
}

var errInvalidMachineID = errf(http.StatusBadRequest, "invalid_machine_id", "The machine id must be 64 lowercase hexadecimal characters (a SHA-256).")

// fail maps an error from auth or store to an HTTP answer; anything
// unexpected is a logged 500 whose body reveals nothing.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var rl *auth.RateLimitedError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae)
	case errors.As(err, &rl):
		e := errf(http.StatusTooManyRequests, "rate_limited", "%s.", strings.TrimSuffix(rl.Error(), "."))
		e.Header = http.Header{"Retry-After": {strconv.Itoa(ratelimit.RetryAfterSeconds(rl.RetryAfter))}}
		writeError(w, e)
	case errors.Is(err, auth.ErrUnauthorized):
		writeError(w, errUnauthorized)
	case errors.Is(err, auth.ErrBadCredentials):
		writeError(w, errf(http.StatusUnauthorized, "bad_credentials", "The username or password is wrong."))
	case errors.Is(err, auth.ErrInvalidUsername):
		writeError(w, errf(http.StatusBadRequest, "invalid_field", "Field \"username\": %s.", auth.ErrInvalidUsername.Error()))
	case errors.Is(err, auth.ErrWeakPassword):
		writeError(w, errf(http.StatusBadRequest, "weak_password", "%s.", auth.ErrWeakPassword.Error()))
	case errors.Is(err, store.ErrMachineMismatch):
		writeError(w, errf(http.StatusForbidden, "machine_mismatch", "The %s header does not match the machine this agent is bound to; an admin can rebind it.", protocol.HeaderMachineID))
	case errors.Is(err, store.ErrRegistrationRefused):
		writeError(w, errf(http.StatusUnauthorized, "registration_refused", "The registration token is unknown, expired, revoked or out of seats; ask an admin for a new one."))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, errf(http.StatusNotFound, "not_found", "No such resource."))
	case errors.Is(err, store.ErrConflict):
		writeError(w, errf(http.StatusConflict, "conflict", "%s.", err.Error()))
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		a.d.Logger.ErrorContext(r.Context(), "request failed", "error", err)
		writeError(w, errf(http.StatusInternalServerError, "internal", "The server failed; the log has the details under this request's id."))
	}
}
