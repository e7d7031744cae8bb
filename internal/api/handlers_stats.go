package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/events"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
)

func (a *API) statsOverview(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	o, err := a.d.Store.StatsOverview(r.Context(), a.d.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

type trendsResponse struct {
	Days []store.TrendDay `json:"days"`
}

func (a *API) statsTrends(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	days := 90
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 365 {
			writeError(w, errf(http.StatusBadRequest, "invalid_query", "days must be a whole number from 1 to 365."))
			return
		}
		days = n
	}
	out, err := a.d.Store.Trends(r.Context(), a.d.Now(), days)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, trendsResponse{Days: out})
}

// EventsKeepalive is how often GET /api/v1/events sends a comment line
// when nothing happens; EventsAuthRecheck how often it checks the session
// is still valid. Variables so tests can shorten them.
var (
	EventsKeepalive   = 15 * time.Second
	EventsAuthRecheck = 30 * time.Second
)

// events streams dashboard events as Server-Sent Events until the client
// leaves, the server stops, or the session ends.
func (a *API) events(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	token := bearer(r)
	if token == "" {
		if c, err := r.Cookie(SessionCookie); err == nil {
			token = c.Value
		}
	}
	rc := http.NewResponseController(w)
	// The server's write timeout would cut the stream; each write gets its own.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	sub, end := a.d.Stream.Subscribe()
	defer end()
	w.WriteHeader(http.StatusOK)
	write := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(": connected\n\n") {
		return
	}
	keep := time.NewTicker(EventsKeepalive)
	defer keep.Stop()
	recheck := time.NewTicker(EventsAuthRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.stopping:
			return
		case <-keep.C:
			if !write(": keepalive\n\n") {
				return
			}
		case <-recheck.C:
			if _, err := a.d.Auth.AuthenticateUser(r.Context(), token); err != nil {
				write("event: session_ended\ndata: {}\n\n")
				return
			}
		case ev := <-sub.C:
			if !write("event: " + ev.Type + "\ndata: " + string(ev.Data) + "\n\n") {
				return
			}
			// Once the buffer has room again, a subscriber that lost events
			// is told to refetch.
			if len(sub.C) < cap(sub.C) && sub.TakeDropped() {
				if !write("event: " + events.Resync + "\ndata: {}\n\n") {
					return
				}
			}
		}
	}
}

type rotateKeyResponse struct {
	Keys          []store.SigningKey `json:"keys"`
	KeyID         string             `json:"key_id"`
	RetiringKeyID string             `json:"retiring_key_id"`
	NotAfter      time.Time          `json:"not_after"`
	Agents        int                `json:"agents"`
}

// rotateKey makes a new key active: the old one retires after the grace
// period, and every agent gets the new key in a rotate_key command signed
// by the old one.
func (a *API) rotateKey(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if p.User.Role != auth.RoleAdmin {
		writeError(w, errf(http.StatusForbidden, "forbidden", "Only an admin can rotate the signing key."))
		return
	}
	if a.d.KeyDir == "" || a.d.Keys == nil {
		writeError(w, errf(http.StatusConflict, "rotation_unavailable", "This server has no key directory to store a new key in."))
		return
	}
	set, err := a.settings(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	old := a.d.Keys.Active()
	if id, err := a.d.Store.ActiveSigningKeyID(r.Context()); err != nil || id != old.ID {
		writeError(w, errf(http.StatusConflict, "conflict", "This server's active key is not the database's (a rotation on another replica?); retry in a minute."))
		return
	}
	nk, err := signing.GenerateKey()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	path := signing.RotatedKeyFile(a.d.KeyDir, nk.ID)
	if err := signing.WriteKeyFile(path, nk); err != nil {
		a.fail(w, r, err)
		return
	}
	now := store.T(a.d.Now())
	notAfter := now.Add(time.Duration(set.KeyRotationGraceSeconds) * time.Second)
	params, err := json.Marshal(protocol.RotateKeyParams{KeyID: nk.ID, PublicKey: signing.EncodePublicKey(nk.Public),
		RetireKeyID: old.ID, NotAfter: notAfter.Unix()})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// rotate_key lives as long as the grace period: an agent that checks in
	// before the old key retires still gets it.
	expiry := notAfter.Sub(now)
	agents, err := a.d.Store.RotateSigningKey(r.Context(), store.KeyRotation{OldKeyID: old.ID, NewKeyID: nk.ID,
		NewPublicKey: signing.EncodePublicKey(nk.Public), Now: now, NotAfter: notAfter,
		Sign: func(ids []string) []store.CommandRecord {
			return a.signCommandsWith(old, ids, protocol.CmdRotateKey, params, p.User.Username, expiry)
		},
		Audit: p.Audit("security.key_rotate", "signing_key", nk.ID, clientIP(r))})
	if err != nil {
		_ = os.Remove(path)
		if errors.Is(err, store.ErrConflict) {
			writeError(w, errf(http.StatusConflict, "conflict", "Another rotation happened meanwhile; reload the keys."))
			return
		}
		a.fail(w, r, err)
		return
	}
	a.d.Keys.Add(nk, true)
	a.d.Logger.InfoContext(r.Context(), "signing key rotated", "key_id", nk.ID, "retiring_key_id", old.ID, "not_after", notAfter, "agents", len(agents))
	if a.d.Hub != nil && len(agents) > 0 {
		a.d.Hub.Publish(agents...)
	}
	a.publishQueued(protocol.CmdRotateKey, agents)
	keys, err := a.d.Store.SigningKeys(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rotateKeyResponse{Keys: keys, KeyID: nk.ID, RetiringKeyID: old.ID, NotAfter: notAfter, Agents: len(agents)})
}
