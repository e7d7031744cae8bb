package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/version"
)

// MinAgentVersion is the oldest agent this server still talks to.
const MinAgentVersion = "0.1.0"

type healthResponse struct {
	Status string `json:"status"`
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.d.Store.Ping(ctx); err != nil {
		a.d.Logger.WarnContext(r.Context(), "health check: database does not answer", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable",
			"error": protocol.ErrorDetail{Code: "database_unavailable", Message: "The database does not answer."}})
		return
	}
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	if a.d.Metrics == nil {
		writeError(w, errf(http.StatusNotFound, "not_found", "Metrics are not enabled."))
		return
	}
	a.d.Metrics.Handler(a.d.MetricsToken).ServeHTTP(w, r)
}

func (a *API) info(w http.ResponseWriter, r *http.Request) {
	minVersion := MinAgentVersion
	// The admin's min_agent_version setting, when set and higher.
	if set, err := a.settings(r); err == nil && set.MinAgentVersion != "" {
		if c, ok := protocol.CompareVersions(set.MinAgentVersion, minVersion); ok && c > 0 {
			minVersion = set.MinAgentVersion
		}
	}
	writeJSON(w, http.StatusOK, protocol.Info{Version: version.Version, Commit: version.Commit, BuildDate: version.BuildDate,
		SchemaVersion: a.d.Store.SchemaVersion(), MinAgentVersion: minVersion})
}

func (a *API) publicKeyList(ctx context.Context) ([]protocol.PublicKey, error) {
	keys, err := a.d.Store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.PublicKey, 0, len(keys))
	for _, k := range keys {
		pk := protocol.PublicKey{KeyID: k.KeyID, Algorithm: k.Algorithm, PublicKey: k.PublicKey, Status: k.Status}
		if k.NotAfter != nil {
			u := k.NotAfter.Unix()
			pk.NotAfter = &u
		}
		out = append(out, pk)
	}
	return out, nil
}

func (a *API) publicKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := a.publicKeyList(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, protocol.PublicKeys{Keys: keys})
}

type setupStatus struct {
	SetupRequired bool `json:"setup_required"`
}

func (a *API) setupStatus(w http.ResponseWriter, r *http.Request) {
	n, err := a.d.Store.CountUsers(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, setupStatus{SetupRequired: n == 0})
}

type setupRequest struct {
	SetupToken string `json:"setup_token"`
	Username   string `json:"username"`
	Password   string `json:"password"`
}

type userResponse struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func toUser(u store.User) userResponse {
	return userResponse{ID: u.ID, Username: u.Username, Role: u.Role, CreatedAt: u.CreatedAt}
}

func (a *API) setup(w http.ResponseWriter, r *http.Request) {
	var req setupRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateSetup(req); e != nil {
		writeError(w, e)
		return
	}
	u, err := a.d.Auth.Setup(r.Context(), req.SetupToken, req.Username, req.Password, clientIP(r))
	switch {
	case errors.Is(err, store.ErrSetupComplete):
		writeError(w, errf(http.StatusGone, "setup_complete", "Setup is closed: an administrator already exists. Sign in instead."))
	case errors.Is(err, store.ErrSetupTokenInvalid):
		writeError(w, errf(http.StatusUnauthorized, "invalid_setup_token", "The setup token is wrong; use the one printed in the server log at start-up."))
	case err != nil:
		a.fail(w, r, err)
	default:
		writeJSON(w, http.StatusCreated, toUser(u))
	}
}

// validateSetup is the check setup makes on a decoded body; the password
// policy is applied by auth.Service.Setup.
func validateSetup(req setupRequest) *apiError {
	return firstErr(field("setup_token", req.SetupToken, 256, true), field("username", req.Username, 64, true))
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

type loginResponse struct {
	Token     string       `json:"token"`
	ExpiresAt time.Time    `json:"expires_at"`
	CSRFToken string       `json:"csrf_token"`
	User      userResponse `json:"user"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateLogin(req); e != nil {
		writeError(w, e)
		return
	}
	res, err := a.d.Auth.Login(r.Context(), req.Username, req.Password, clientIP(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	csrf := a.d.Auth.CSRFToken(res.TokenHash)
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: res.Token, Path: "/", Expires: res.ExpiresAt,
		HttpOnly: true, Secure: a.d.SecureCookies, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: csrf, Path: "/", Expires: res.ExpiresAt,
		Secure: a.d.SecureCookies, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, loginResponse{Token: res.Token, ExpiresAt: res.ExpiresAt, CSRFToken: csrf, User: toUser(res.User)})
}

// validateLogin is the check login makes on a decoded body.
func validateLogin(req loginRequest) *apiError {
	if e := firstErr(field("username", req.Username, 64, true), field("totp", req.TOTP, 16, false)); e != nil {
		return e
	}
	if req.Password == "" || len(req.Password) > auth.MaxPasswordLen {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"password\" is required and at most %d bytes.", auth.MaxPasswordLen)
	}
	return nil
}
