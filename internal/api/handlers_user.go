package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/store"
)

// list is the shape of every list response (SPEC §3).
type list[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
	Total      int     `json:"total"`
}

// cursorList is a list paged by keyset cursor only, for tables too large to count.
type cursorList[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// parsePage reads ?limit= and ?cursor= (or ?offset=). Cursors are opaque to
// clients; today they encode an offset.
func parsePage(r *http.Request) (store.Page, *apiError) {
	q := r.URL.Query()
	p := store.Page{Limit: 50}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return p, errf(http.StatusBadRequest, "invalid_query", "limit must be a whole number from 1 to 500.")
		}
		p.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<30 {
			return p, errf(http.StatusBadRequest, "invalid_query", "offset must be a whole number of 0 or more.")
		}
		p.Offset = n
	}
	if v := q.Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "o:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "o:") || n < 0 || n > 1<<30 {
			return p, errf(http.StatusBadRequest, "invalid_query", "cursor is not one this server handed out.")
		}
		p.Offset = n
	}
	return p, nil
}

func nextCursor(p store.Page, got, total int) *string {
	if p.Offset+got >= total || got == 0 {
		return nil
	}
	c := base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(p.Offset+got)))
	return &c
}

// pathID reads a {id} path value that must be a UUID; others are 404 since
// no such resource can exist.
func pathID(r *http.Request) (string, *apiError) {
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return "", errf(http.StatusNotFound, "not_found", "No such resource: ids are UUIDs.")
	}
	return strings.ToLower(id), nil
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := a.d.Auth.Logout(r.Context(), p, clientIP(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	for _, name := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: name == SessionCookie,
			Secure: a.d.SecureCookies, SameSite: http.SameSiteStrictMode})
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) me(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	writeJSON(w, http.StatusOK, toUser(p.User))
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (a *API) changePassword(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req passwordRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if err := a.d.Auth.ChangePassword(r.Context(), p, req.CurrentPassword, req.NewPassword, clientIP(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type apiTokenRequest struct {
	Name             string `json:"name"`
	ExpiresInSeconds int64  `json:"expires_in_seconds"`
}

type apiTokenResponse struct {
	store.UserToken
	Token string `json:"token"`
}

const maxTTLSeconds = 5 * 365 * 24 * 3600

func (a *API) listAPITokens(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	toks, err := a.d.Store.ListUserTokens(r.Context(), p.User.ID, "api", a.d.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[store.UserToken]{Items: toks, Total: len(toks)})
}

func (a *API) createAPIToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req apiTokenRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateAPIToken(req); e != nil {
		writeError(w, e)
		return
	}
	plain, t, err := a.d.Auth.CreateAPIToken(r.Context(), p, req.Name, time.Duration(req.ExpiresInSeconds)*time.Second, clientIP(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiTokenResponse{UserToken: t, Token: plain})
}

// validateAPIToken is the check createAPIToken makes on a decoded body.
func validateAPIToken(req apiTokenRequest) *apiError {
	if e := field("name", req.Name, 100, true); e != nil {
		return e
	}
	if req.ExpiresInSeconds != 0 && (req.ExpiresInSeconds < 60 || req.ExpiresInSeconds > maxTTLSeconds) {
		return errf(http.StatusBadRequest, "invalid_field", "expires_in_seconds must be 0 (never) or from 60 to %d.", maxTTLSeconds)
	}
	return nil
}

func (a *API) deleteAPIToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	a.actOnID(w, r, p, "api_token.revoke", "api_token", func(ctx context.Context, id string, audit *store.Audit) error {
		return a.d.Store.RevokeUserToken(ctx, p.User.ID, id, a.d.Now(), audit)
	})
}

type registrationTokenRequest struct {
	Seats            int    `json:"seats"`
	ExpiresInSeconds int64  `json:"expires_in_seconds"`
	Note             string `json:"note"`
}

type registrationToken struct {
	store.RegistrationToken
	Status string `json:"status"`
	Token  string `json:"token,omitempty"`
}

// Registration token bounds.
const (
	defaultRegTTL = 24 * 3600
	maxRegTTL     = 365 * 24 * 3600
	maxSeats      = 100000
)

func (a *API) createRegistrationToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req registrationTokenRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateRegistrationToken(&req); e != nil {
		writeError(w, e)
		return
	}
	plain, t, err := a.d.Auth.CreateRegistrationToken(r.Context(), p, req.Seats, time.Duration(req.ExpiresInSeconds)*time.Second, req.Note, clientIP(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, registrationToken{RegistrationToken: t, Status: t.Status(a.d.Now()), Token: plain})
}

// validateRegistrationToken fills in the defaults (1 seat, 24 h) and is the
// check createRegistrationToken makes on a decoded body.
func validateRegistrationToken(req *registrationTokenRequest) *apiError {
	if req.Seats == 0 {
		req.Seats = 1
	}
	if req.ExpiresInSeconds == 0 {
		req.ExpiresInSeconds = defaultRegTTL
	}
	if req.Seats < 1 || req.Seats > maxSeats {
		return errf(http.StatusBadRequest, "invalid_field", "seats must be from 1 to %d.", maxSeats)
	}
	if req.ExpiresInSeconds < 60 || req.ExpiresInSeconds > maxRegTTL {
		return errf(http.StatusBadRequest, "invalid_field", "expires_in_seconds must be from 60 to %d.", maxRegTTL)
	}
	return field("note", req.Note, 500, false)
}

func (a *API) listRegistrationTokens(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	pg, e := parsePage(r)
	if e != nil {
		writeError(w, e)
		return
	}
	toks, total, err := a.d.Store.ListRegistrationTokens(r.Context(), pg)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.d.Now()
	items := make([]registrationToken, len(toks))
	for i, t := range toks {
		items[i] = registrationToken{RegistrationToken: t, Status: t.Status(now)}
	}
	writeJSON(w, http.StatusOK, list[registrationToken]{Items: items, Total: total, NextCursor: nextCursor(pg, len(items), total)})
}

func (a *API) revokeRegistrationToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	t, err := a.d.Store.RevokeRegistrationToken(r.Context(), id, a.d.Now(), p.Audit("registration_token.revoke", "registration_token", id, clientIP(r)))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registrationToken{RegistrationToken: t, Status: t.Status(a.d.Now())})
}

func (a *API) deleteRegistrationToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	a.actOnID(w, r, p, "registration_token.delete", "registration_token", a.d.Store.DeleteRegistrationToken)
}

// actOnID is the shape of every audited action on one resource that answers
// 204: read the {id}, run op with the audit row, answer.
func (a *API) actOnID(w http.ResponseWriter, r *http.Request, p auth.Principal, action, targetType string,
	op func(ctx context.Context, id string, audit *store.Audit) error) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	if err := op(r.Context(), id, p.Audit(action, targetType, id, clientIP(r))); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) securityKeys(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	keys, err := a.d.Store.SigningKeys(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[store.SigningKey]{Items: keys, Total: len(keys)})
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	f := store.AuditFilter{Action: q.Get("action"), ActorID: q.Get("actor_id"), TargetID: q.Get("target_id"), Limit: 50}
	for name, v := range map[string]string{"action": f.Action, "actor_id": f.ActorID, "target_id": f.TargetID} {
		if e := field(name, v, 128, false); e != nil {
			e.Code = "invalid_query"
			writeError(w, e)
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, errf(http.StatusBadRequest, "invalid_query", "limit must be a whole number from 1 to 500."))
			return
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, errf(http.StatusBadRequest, "invalid_query", "cursor is not one this server handed out."))
			return
		}
		f.BeforeID = n
	}
	rows, err := a.d.Store.ListAudit(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := cursorList[store.Audit]{Items: rows}
	if len(rows) == f.Limit {
		c := strconv.FormatInt(rows[len(rows)-1].ID, 10)
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}
