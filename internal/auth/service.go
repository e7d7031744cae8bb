// Package auth owns every credential RedFlag hands out: passwords, dashboard
// sessions, user API tokens, registration tokens, agent JWTs and refresh
// tokens. Only hashes of tokens reach the store.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/ratelimit"
	"github.com/redflaghq/redflag/internal/store"
)

// Errors handlers map to HTTP answers.
var (
	ErrBadCredentials = errors.New("username or password is wrong")
	ErrUnauthorized   = errors.New("missing or invalid credentials")
)

// RateLimitedError says when to try again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many attempts; try again in %d seconds", ratelimit.RetryAfterSeconds(e.RetryAfter))
}

// Lifetimes.
const (
	SessionTTL        = 12 * time.Hour
	RefreshTokenTTL   = 90 * 24 * time.Hour
	tokenTouchEvery   = time.Minute
	DefaultCheckIn    = 300
	RoleAdmin         = "admin"
	loginWindow       = 15 * time.Minute
	DefaultLoginPerIP = 20
	DefaultLoginUser  = 10
)

// Config builds a Service.
type Config struct {
	Store     *store.Store
	JWTSecret []byte
	Now       func() time.Time
	// Login attempts allowed per 15 minutes, per client IP and per user name.
	LoginPerIP, LoginPerUser int
	CheckInIntervalSeconds   int
}

// Service implements the credential flows on top of the store.
type Service struct {
	st        *store.Store
	agents    *AgentTokens
	csrfKey   []byte
	now       func() time.Time
	loginIP   *ratelimit.Keyed
	loginUser *ratelimit.Keyed
	dummyHash string
	interval  int
}

// NewService checks the configuration and builds a Service.
func NewService(c Config) (*Service, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	at, err := NewAgentTokens(c.JWTSecret, c.Now)
	if err != nil {
		return nil, err
	}
	if c.LoginPerIP == 0 {
		c.LoginPerIP = DefaultLoginPerIP
	}
	if c.LoginPerUser == 0 {
		c.LoginPerUser = DefaultLoginUser
	}
	if c.CheckInIntervalSeconds <= 0 {
		c.CheckInIntervalSeconds = DefaultCheckIn
	}
	// A hash to verify against when the user does not exist, so a wrong user
	// name costs as much time as a wrong password.
	dummy, err := HashPassword("not-a-real-password-" + uuid.NewString())
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, c.JWTSecret)
	mac.Write([]byte("redflag-csrf-key-v1"))
	return &Service{
		st: c.Store, agents: at, csrfKey: mac.Sum(nil), now: c.Now,
		loginIP: ratelimit.New(c.LoginPerIP, loginWindow), loginUser: ratelimit.New(c.LoginPerUser, loginWindow),
		dummyHash: dummy, interval: c.CheckInIntervalSeconds,
	}, nil
}

// AgentTokens exposes the JWT issuer (benchmarks and tests mint tokens with it).
func (s *Service) AgentTokens() *AgentTokens { return s.agents }

// CheckInInterval is the interval given to newly registered agents.
func (s *Service) CheckInInterval() int { return s.interval }

// Principal is an authenticated user and the credential they used.
type Principal struct {
	User  store.User
	Token store.UserToken
}

// Audit starts an audit row for an action by p from ip.
func (p Principal) Audit(action, targetType, targetID, ip string) *store.Audit {
	return &store.Audit{ActorType: "user", ActorID: p.User.ID, ActorName: p.User.Username,
		Action: action, TargetType: targetType, TargetID: targetID, IP: ip}
}

// LoginResult is a new dashboard session.
type LoginResult struct {
	Token     string
	TokenHash string
	ExpiresAt time.Time
	User      store.User
}

// Login checks a password and opens a session. Attempts are limited per IP
// and per user name, successful or not.
func (s *Service) Login(ctx context.Context, username, password, ip string) (LoginResult, error) {
	now := s.now()
	if ok, wait := s.loginIP.Allow(ip, now); !ok {
		return LoginResult{}, &RateLimitedError{RetryAfter: wait}
	}
	if ok, wait := s.loginUser.Allow(normUser(username), now); !ok {
		return LoginResult{}, &RateLimitedError{RetryAfter: wait}
	}
	u, err := s.st.UserByUsername(ctx, username)
	hash := u.PasswordHash
	if errors.Is(err, store.ErrNotFound) {
		hash = s.dummyHash
	} else if err != nil {
		return LoginResult{}, err
	}
	ok, verr := VerifyPassword(hash, password)
	if err != nil || verr != nil || !ok {
		_ = s.st.RecordAudit(ctx, store.Audit{ActorType: "user", ActorName: truncate(username, 64), Action: "auth.login_failed", IP: ip})
		return LoginResult{}, ErrBadCredentials
	}
	plain, th := NewToken(PrefixSession)
	exp := store.T(now.Add(SessionTTL))
	t := store.UserToken{ID: uuid.Must(uuid.NewV7()).String(), UserID: u.ID, Kind: "session", TokenHash: th,
		CreatedAt: now, ExpiresAt: &exp, CreatedIP: ip}
	a := Principal{User: u}.Audit("auth.login", "session", t.ID, ip)
	if err := s.st.CreateUserToken(ctx, t, a); err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Token: plain, TokenHash: th, ExpiresAt: exp, User: u}, nil
}

// normUser keys the per-user login limit. User names match case-insensitively
// (store.UserByUsername), so the key is folded too: "Admin" and "ADMIN" share
// admin's budget instead of each getting a fresh one.
func normUser(u string) string { return strings.ToLower(truncate(u, 128)) }

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

// AuthenticateUser resolves a session or API token. Sessions slide: each use
// (at most once a minute) pushes their expiry SessionTTL ahead.
func (s *Service) AuthenticateUser(ctx context.Context, token string) (Principal, error) {
	if !LooksLike(token, PrefixSession) && !LooksLike(token, PrefixAPIToken) {
		return Principal{}, ErrUnauthorized
	}
	now := s.now()
	u, t, err := s.st.UserByToken(ctx, HashToken(token), now)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > tokenTouchEvery {
		var slide *time.Time
		if t.Kind == "session" {
			e := now.Add(SessionTTL)
			slide = &e
		}
		// Best effort: a failed touch must not fail the request.
		_ = s.st.TouchUserToken(ctx, t.ID, now, slide)
	}
	return Principal{User: u, Token: t}, nil
}

// Logout revokes the session used for the request. API tokens are revoked
// only through their own route, so a script calling logout does not kill them.
func (s *Service) Logout(ctx context.Context, p Principal, ip string) error {
	if p.Token.Kind != "session" {
		return nil
	}
	return s.st.RevokeUserToken(ctx, p.User.ID, p.Token.ID, s.now(), p.Audit("auth.logout", "session", p.Token.ID, ip))
}

// CSRFToken is the anti-CSRF value bound to a session (an HMAC of its hash),
// so nothing extra is stored and it dies with the session.
func (s *Service) CSRFToken(sessionHash string) string {
	mac := hmac.New(sha256.New, s.csrfKey)
	mac.Write([]byte(sessionHash))
	return hex.EncodeToString(mac.Sum(nil))
}

// CheckCSRF compares a presented CSRF header in constant time.
func (s *Service) CheckCSRF(sessionHash, presented string) bool {
	want := s.CSRFToken(sessionHash)
	return subtle.ConstantTimeCompare([]byte(want), []byte(presented)) == 1
}

// ChangePassword verifies the current password, stores the new one and
// revokes the user's other sessions.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next, ip string) error {
	ok, err := VerifyPassword(p.User.PasswordHash, current)
	if err != nil || !ok {
		return ErrBadCredentials
	}
	if err := CheckPasswordPolicy(next); err != nil {
		return err
	}
	h, err := HashPassword(next)
	if err != nil {
		return err
	}
	return s.st.ChangePassword(ctx, p.User.ID, h, p.Token.ID, s.now(), p.Audit("user.change_password", "user", p.User.ID, ip))
}

// CreateAPIToken makes a long-lived token for the CLI and scripts; the
// plain text is returned once and never stored.
func (s *Service) CreateAPIToken(ctx context.Context, p Principal, name string, ttl time.Duration, ip string) (string, store.UserToken, error) {
	now := store.T(s.now())
	plain, h := NewToken(PrefixAPIToken)
	t := store.UserToken{ID: uuid.Must(uuid.NewV7()).String(), UserID: p.User.ID, Kind: "api", Name: name,
		TokenHash: h, CreatedAt: now, CreatedIP: ip}
	if ttl > 0 {
		e := store.T(now.Add(ttl))
		t.ExpiresAt = &e
	}
	if err := s.st.CreateUserToken(ctx, t, p.Audit("api_token.create", "api_token", t.ID, ip)); err != nil {
		return "", store.UserToken{}, err
	}
	return plain, t, nil
}

// EnsureAdmin creates the first admin from REDFLAG_ADMIN_* when no account
// exists; with accounts present it does nothing.
func (s *Service) EnsureAdmin(ctx context.Context, username, password string) (bool, error) {
	if err := ValidUsername(username); err != nil {
		return false, fmt.Errorf("REDFLAG_ADMIN_USER: %w", err)
	}
	if err := CheckPasswordPolicy(password); err != nil {
		return false, fmt.Errorf("REDFLAG_ADMIN_PASSWORD: %w", err)
	}
	if n, err := s.st.CountUsers(ctx); err != nil || n > 0 {
		return false, err
	}
	u, err := s.newUser(username, password)
	if err != nil {
		return false, err
	}
	err = s.st.CreateFirstAdmin(ctx, u, "", &store.Audit{ActorType: "system", ActorName: "environment",
		Action: "setup.admin_from_env", TargetType: "user", TargetID: u.ID})
	if errors.Is(err, store.ErrSetupComplete) {
		return false, nil // another replica won the race
	}
	return err == nil, err
}

// PrepareSetup makes a fresh one-time setup token when no account exists.
func (s *Service) PrepareSetup(ctx context.Context) (token string, open bool, err error) {
	plain, h := NewToken(PrefixSetup)
	open, err = s.st.SetSetupToken(ctx, h)
	if err != nil || !open {
		return "", false, err
	}
	return plain, true, nil
}

// Setup creates the first admin with the one-time setup token.
func (s *Service) Setup(ctx context.Context, setupToken, username, password, ip string) (store.User, error) {
	if err := ValidUsername(username); err != nil {
		return store.User{}, err
	}
	if err := CheckPasswordPolicy(password); err != nil {
		return store.User{}, err
	}
	if !LooksLike(setupToken, PrefixSetup) {
		if n, err := s.st.CountUsers(ctx); err == nil && n > 0 {
			return store.User{}, store.ErrSetupComplete
		}
		return store.User{}, store.ErrSetupTokenInvalid
	}
	u, err := s.newUser(username, password)
	if err != nil {
		return store.User{}, err
	}
	err = s.st.CreateFirstAdmin(ctx, u, HashToken(setupToken), &store.Audit{ActorType: "user", ActorID: u.ID,
		ActorName: u.Username, Action: "setup.admin", TargetType: "user", TargetID: u.ID, IP: ip})
	return u, err
}

func (s *Service) newUser(username, password string) (store.User, error) {
	h, err := HashPassword(password)
	if err != nil {
		return store.User{}, err
	}
	now := store.T(s.now())
	return store.User{ID: uuid.Must(uuid.NewV7()).String(), Username: username, PasswordHash: h, Role: RoleAdmin,
		CreatedAt: now, PasswordChangedAt: now}, nil
}

// ErrInvalidUsername is returned by ValidUsername.
var ErrInvalidUsername = errors.New("username must be 1 to 64 printable characters, without leading or trailing spaces")

// ValidUsername accepts 1–64 printable characters without surrounding space.
func ValidUsername(u string) error {
	if err := protocol.CheckText(u, 64, false); err != nil || u == "" || u[0] == ' ' || u[len(u)-1] == ' ' {
		return ErrInvalidUsername
	}
	return nil
}

// CreateRegistrationToken makes a token with seats that expires after ttl.
func (s *Service) CreateRegistrationToken(ctx context.Context, p Principal, seats int, ttl time.Duration, note, ip string) (string, store.RegistrationToken, error) {
	now := store.T(s.now())
	plain, h := NewToken(PrefixRegistration)
	t := store.RegistrationToken{ID: uuid.Must(uuid.NewV7()).String(), TokenHash: h, Note: note, Seats: seats,
		CreatedBy: p.User.Username, CreatedAt: now, ExpiresAt: store.T(now.Add(ttl))}
	a := p.Audit("registration_token.create", "registration_token", t.ID, ip)
	a.Details = map[string]any{"seats": seats, "expires_at": t.ExpiresAt}
	if err := s.st.CreateRegistrationToken(ctx, t, a); err != nil {
		return "", store.RegistrationToken{}, err
	}
	return plain, t, nil
}

// Registered is what a registration hands back to the agent.
type Registered struct {
	Agent        store.Agent
	Token        string
	RefreshToken string
	Reinstall    bool
}

// RegisterAgent enrols an agent (the request is already validated).
func (s *Service) RegisterAgent(ctx context.Context, req protocol.RegisterRequest, ip string) (Registered, error) {
	if !LooksLike(req.RegistrationToken, PrefixRegistration) {
		return Registered{}, store.ErrRegistrationRefused
	}
	now := store.T(s.now())
	set, err := s.st.LoadSettings(ctx, store.DefaultSettings(s.interval))
	if err != nil {
		return Registered{}, err
	}
	refresh, rh := NewToken(PrefixRefresh)
	a, reinstall, err := s.st.RegisterAgent(ctx, store.RegisterParams{
		RegistrationTokenHash: HashToken(req.RegistrationToken),
		NewAgentID:            uuid.Must(uuid.NewV7()).String(),
		Agent: store.Agent{Hostname: req.Hostname, OSType: req.OSType, OSVersion: req.OSVersion, OSArch: req.OSArch,
			AgentVersion: req.AgentVersion, MachineID: req.MachineID, CheckInIntervalSeconds: set.CheckInIntervalSeconds},
		RefreshTokenID: uuid.Must(uuid.NewV7()).String(), RefreshTokenHash: rh,
		RefreshExpiresAt: now.Add(RefreshTokenTTL), Now: now, IP: ip,
	})
	if err != nil {
		return Registered{}, err
	}
	jwtText, _, err := s.agents.Issue(a.ID, a.TokenGeneration)
	if err != nil {
		return Registered{}, err
	}
	return Registered{Agent: a, Token: jwtText, RefreshToken: refresh, Reinstall: reinstall}, nil
}

// RenewAgent exchanges a refresh token (bound to machineID) for a new JWT
// and a new refresh token; the old refresh token stops working.
func (s *Service) RenewAgent(ctx context.Context, req protocol.RenewRequest, machineID string) (protocol.RenewResponse, error) {
	if !LooksLike(req.RefreshToken, PrefixRefresh) {
		return protocol.RenewResponse{}, ErrUnauthorized
	}
	now := store.T(s.now())
	refresh, rh := NewToken(PrefixRefresh)
	a, err := s.st.RenewRefreshToken(ctx, store.RenewParams{AgentID: req.AgentID, OldHash: HashToken(req.RefreshToken),
		MachineID: machineID, NewID: uuid.Must(uuid.NewV7()).String(), NewHash: rh,
		NewExpiresAt: now.Add(RefreshTokenTTL), Now: now})
	if errors.Is(err, store.ErrNotFound) {
		return protocol.RenewResponse{}, ErrUnauthorized
	}
	if err != nil {
		return protocol.RenewResponse{}, err
	}
	jwtText, _, err := s.agents.Issue(a.ID, a.TokenGeneration)
	if err != nil {
		return protocol.RenewResponse{}, err
	}
	return protocol.RenewResponse{Token: jwtText, RefreshToken: refresh}, nil
}

// AuthenticateAgent checks an agent JWT against the agent's row: the agent
// exists, the token is of its current generation, and machineID is the one
// bound to it. ErrUnauthorized → 401, store.ErrMachineMismatch → 403.
func (s *Service) AuthenticateAgent(ctx context.Context, bearer, machineID string) (store.AgentAuth, error) {
	c, err := s.agents.Parse(bearer)
	if err != nil {
		return store.AgentAuth{}, ErrUnauthorized
	}
	a, err := s.st.AgentAuthByID(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return store.AgentAuth{}, ErrUnauthorized
	}
	if err != nil {
		return store.AgentAuth{}, err
	}
	if a.TokenGeneration != c.Gen {
		return store.AgentAuth{}, ErrUnauthorized
	}
	if subtle.ConstantTimeCompare([]byte(a.MachineID), []byte(machineID)) != 1 {
		return a, store.ErrMachineMismatch
	}
	return a, nil
}
