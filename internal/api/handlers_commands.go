package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/events"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
)

// MaxBulkAgents bounds one command request.
const MaxBulkAgents = 100000

type createCommandsRequest struct {
	AgentIDs []string        `json:"agent_ids"`
	Type     string          `json:"type"`
	Params   json.RawMessage `json:"params,omitempty"`
}

type commandsResponse struct {
	Commands []store.CommandRecord `json:"commands"`
}

// userCommandTypes are the types an admin may queue directly; rotate_key is
// raised by key rotation only.
var userCommandTypes = []string{protocol.CmdScanUpdates, protocol.CmdCollectSpecs, protocol.CmdInstallUpdates,
	protocol.CmdConfirmDependencies, protocol.CmdRollbackUpdate, protocol.CmdUpdateAgent,
	protocol.CmdEnableHeartbeat, protocol.CmdDisableHeartbeat, protocol.CmdReboot}

// validateCommandRequest checks the request and returns the agent ids
// (deduplicated, lower case) and the compact params the signature will cover.
func validateCommandRequest(req createCommandsRequest) ([]string, []byte, *apiError) {
	if !slices.Contains(userCommandTypes, req.Type) {
		return nil, nil, errf(http.StatusBadRequest, "invalid_field", "Field \"type\" must be one of %s.", strings.Join(userCommandTypes, ", "))
	}
	if len(req.AgentIDs) == 0 || len(req.AgentIDs) > MaxBulkAgents {
		return nil, nil, errf(http.StatusBadRequest, "invalid_field", "Field \"agent_ids\" must list 1 to %d agents.", MaxBulkAgents)
	}
	seen := make(map[string]bool, len(req.AgentIDs))
	ids := make([]string, 0, len(req.AgentIDs))
	for _, id := range req.AgentIDs {
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 {
			return nil, nil, errf(http.StatusBadRequest, "invalid_field", "agent_ids must be agent UUIDs; %q is not.", truncateText(id, 40))
		}
		s := u.String()
		if !seen[s] {
			seen[s] = true
			ids = append(ids, s)
		}
	}
	params := []byte("{}")
	if len(req.Params) > 0 && !bytes.Equal(bytes.TrimSpace(req.Params), []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, req.Params); err != nil {
			return nil, nil, errf(http.StatusBadRequest, "invalid_json", "Field \"params\" is not valid JSON.")
		}
		// The signature covers the bytes exactly as they go out, and the
		// response encoder escapes <, > and & for browsers; escape them here
		// so what is signed is what is sent.
		var esc bytes.Buffer
		json.HTMLEscape(&esc, buf.Bytes())
		params = esc.Bytes()
	}
	if e := validateParams(req.Type, params); e != nil {
		return nil, nil, e
	}
	return ids, params, nil
}

// validateParams decodes params strictly into the type's parameter struct
// and checks their ranges, so an agent never receives what it cannot run.
func validateParams(typ string, params []byte) *apiError {
	if params[0] != '{' {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"params\" must be a JSON object.")
	}
	var target any
	switch typ {
	case protocol.CmdEnableHeartbeat:
		target = &protocol.HeartbeatParams{}
	case protocol.CmdReboot:
		target = &protocol.RebootParams{}
	case protocol.CmdScanUpdates:
		target = &protocol.ScanUpdatesParams{}
	case protocol.CmdCollectSpecs, protocol.CmdDisableHeartbeat:
		target = &struct{}{}
	case protocol.CmdUpdateAgent:
		target = &protocol.UpdateAgentParams{}
	default:
		return nil // validated by the features that create them
	}
	if e := decodeJSONReader(bytes.NewReader(params), MaxBodyBytes, target); e != nil {
		e.Message = "params: " + e.Message
		return e
	}
	switch p := target.(type) {
	case *protocol.HeartbeatParams:
		if p.IntervalSeconds < 5 || p.IntervalSeconds > 3600 || p.DurationSeconds < 60 || p.DurationSeconds > 86400 {
			return errf(http.StatusBadRequest, "invalid_field", "enable_heartbeat needs interval_seconds 5–3600 and duration_seconds 60–86400.")
		}
	case *protocol.RebootParams:
		if p.DelaySeconds < 0 || p.DelaySeconds > 86400 {
			return errf(http.StatusBadRequest, "invalid_field", "reboot needs delay_seconds 0–86400.")
		}
	case *protocol.UpdateAgentParams:
		return validateUpdateAgentParams(p)
	case *protocol.ScanUpdatesParams:
		for _, s := range p.Scanners {
			if e := field("scanners", s, 32, true); e != nil {
				return e
			}
		}
	}
	return nil
}

func truncateText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// signCommands builds one signed command per agent. Commands are signed
// here, at creation, and stored signed: delivery never signs.
func (a *API) signCommands(agentIDs []string, typ string, params []byte, createdBy string, expiry time.Duration) []store.CommandRecord {
	return a.signCommandsWith(a.d.Keys.Active(), agentIDs, typ, params, createdBy, expiry)
}

// signCommandsWith is signCommands with a given key (rotation signs with
// the old one).
func (a *API) signCommandsWith(key *signing.Key, agentIDs []string, typ string, params []byte, createdBy string, expiry time.Duration) []store.CommandRecord {
	now := store.T(a.d.Now())
	issued, expires := now.Unix(), now.Add(expiry).Unix()
	out := make([]store.CommandRecord, len(agentIDs))
	for i, agentID := range agentIDs {
		id := uuid.Must(uuid.NewV7()).String()
		sig := signing.SignCommand(key, signing.CommandFields{AgentID: agentID, ID: id, Type: typ, Params: params,
			IssuedAt: issued, ExpiresAt: expires})
		out[i] = store.CommandRecord{Command: store.Command{ID: id, AgentID: agentID, Type: typ, Params: string(params),
			Status: protocol.StatePending, KeyID: key.ID, Signature: sig, IssuedAt: issued, ExpiresAt: expires, CreatedAt: now},
			CreatedBy: createdBy}
	}
	return out
}

func (a *API) createCommands(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req createCommandsRequest
	if e := decodeJSON(w, r, MaxReportBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	ids, params, e := validateCommandRequest(req)
	if e != nil {
		writeError(w, e)
		return
	}
	set, err := a.settings(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	cmds := a.signCommands(ids, req.Type, params, p.User.Username, time.Duration(set.CommandExpirySeconds)*time.Second)
	audit := p.Audit("command.create", "command", "", clientIP(r))
	audit.Details = map[string]any{"type": req.Type, "agents": len(ids)}
	if len(ids) == 1 {
		audit.TargetType, audit.TargetID = "agent", ids[0]
	}
	out, err := a.d.Store.CreateCommands(r.Context(), cmds, audit)
	var unknown *store.UnknownAgentsError
	if errors.As(err, &unknown) {
		writeError(w, errf(http.StatusNotFound, "unknown_agents", "%d of the agent ids are not registered agents, e.g. %s.", len(unknown.IDs), unknown.IDs[0]))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.d.Hub != nil {
		a.d.Hub.Publish(ids...)
	}
	a.publishQueued(req.Type, ids)
	writeJSON(w, http.StatusCreated, commandsResponse{Commands: out})
}

func (a *API) listCommands(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	pg, e := parsePage(r)
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	f := store.CommandFilter{AgentID: q.Get("agent_id"), Status: q.Get("status"), Type: q.Get("type"), Page: pg}
	if f.AgentID != "" {
		if _, err := uuid.Parse(f.AgentID); err != nil {
			writeError(w, errf(http.StatusBadRequest, "invalid_query", "agent_id must be an agent UUID."))
			return
		}
	}
	if f.Status != "" && !slices.Contains([]string{protocol.StatePending, protocol.StateSent, protocol.StateSucceeded, protocol.StateFailed,
		protocol.StateTimedOut, protocol.StateExpired, protocol.StateCancelled}, f.Status) {
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "status must be a command state (pending, sent, succeeded, failed, timed_out, expired, cancelled)."))
		return
	}
	if f.Type != "" && !slices.Contains(protocol.CommandTypes, f.Type) {
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "type must be a command type."))
		return
	}
	cmds, total, err := a.d.Store.ListCommands(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[store.CommandRecord]{Items: cmds, Total: total, NextCursor: nextCursor(pg, len(cmds), total)})
}

func (a *API) getCommand(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	c, err := a.d.Store.GetCommand(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *API) cancelCommand(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	c, err := a.d.Store.CancelCommand(r.Context(), id, a.d.Now(), p.Audit("command.cancel", "command", id, clientIP(r)))
	if errors.Is(err, store.ErrNotPending) {
		writeError(w, errf(http.StatusConflict, "not_pending", "Only a pending command can be cancelled; this one is %s.", c.Status))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

type storedResult struct {
	ExitCode   int             `json:"exit_code"`
	Output     string          `json:"output"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	Details    json.RawMessage `json:"details,omitempty"`
}

type resultResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// MaxResultDetails bounds the details object of a result.
const MaxResultDetails = 256 << 10

func validateResult(res protocol.CommandResult) *apiError {
	if res.Status != protocol.StateSucceeded && res.Status != protocol.StateFailed {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"status\" must be succeeded or failed.")
	}
	if len(res.Output) > protocol.MaxResultOutput {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"output\" is over %d bytes; send its tail.", protocol.MaxResultOutput)
	}
	if !utf8.ValidString(res.Output) || strings.ContainsRune(res.Output, 0) {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"output\" must be UTF-8 text without NUL bytes.")
	}
	if len(res.Details) > MaxResultDetails {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"details\" is over %d bytes.", MaxResultDetails)
	}
	if len(res.Details) > 0 && !bytes.Equal(res.Details, []byte("null")) && bytes.TrimSpace(res.Details)[0] != '{' {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"details\" must be a JSON object.")
	}
	return nil
}

func (a *API) commandResult(w http.ResponseWriter, r *http.Request, ag store.AgentAuth) {
	cid := r.PathValue("command_id")
	if _, err := uuid.Parse(cid); err != nil || len(cid) != 36 {
		writeError(w, errf(http.StatusNotFound, "not_found", "No such command: ids are UUIDs."))
		return
	}
	var res protocol.CommandResult
	if e := decodeJSON(w, r, MaxBodyBytes, &res); e != nil {
		writeError(w, e)
		return
	}
	if e := validateResult(res); e != nil {
		writeError(w, e)
		return
	}
	res.Details = withoutNUL(res.Details)
	body, err := json.Marshal(storedResult{ExitCode: res.ExitCode, Output: res.Output, StartedAt: res.StartedAt.UTC(),
		FinishedAt: res.FinishedAt.UTC(), Details: res.Details})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The details of an install_updates or confirm_dependencies result move
	// its updates, in the transaction that stores the result.
	c, queued, err := a.d.Store.SaveCommandResult(r.Context(), store.ResultParams{AgentID: ag.ID, CommandID: strings.ToLower(cid),
		Status: res.Status, Result: body, Output: cleanText(res.Output, protocol.MaxResultOutput, true),
		Install: installOutcome(res.Details), Sign: a.signerOnce(r.Context(), "system"), Now: a.d.Now()})
	if errors.Is(err, store.ErrCommandFinished) {
		writeError(w, errf(http.StatusConflict, "command_finished", "This command already finished as %s.", c.Status))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.publish(queued)
	a.d.Stream.Publish(events.CommandFinished, map[string]string{"command_id": c.ID, "agent_id": c.AgentID, "type": c.Type, "status": c.Status})
	if isInstallCommand(c.Type) {
		a.d.Stream.Publish(events.UpdatesChanged, map[string]string{"agent_id": c.AgentID})
	}
	a.settleUpgrade(r.Context(), c)
	writeJSON(w, http.StatusOK, resultResponse{ID: c.ID, Status: c.Status})
}

func (a *API) settings(r *http.Request) (store.Settings, error) {
	return a.d.Store.LoadSettings(r.Context(), a.d.DefaultSettings)
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	set, err := a.settings(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

func (a *API) putSettings(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	set, err := a.settings(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// A partial body changes only the fields it names.
	if e := decodeJSON(w, r, MaxBodyBytes, &set); e != nil {
		writeError(w, e)
		return
	}
	if err := set.Validate(); err != nil {
		writeError(w, errf(http.StatusBadRequest, "invalid_field", "%s.", strings.TrimSuffix(err.Error(), ": "+store.ErrInvalid.Error())))
		return
	}
	if err := a.d.Store.SaveSettings(r.Context(), set, p.Audit("settings.update", "settings", "", clientIP(r))); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

// withoutNUL returns a JSON value whose strings (and keys) hold no NUL
// character: PostgreSQL's jsonb refuses \u0000, and package manager output
// in install details may carry one. Such a value is re-encoded with each
// NUL replaced by U+FFFD; any other is returned as is.
func withoutNUL(raw json.RawMessage) json.RawMessage {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return raw
	}
	b, err := json.Marshal(replaceNUL(v))
	if err != nil {
		return raw
	}
	return b
}

func replaceNUL(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "\x00", "\uFFFD")
	case []any:
		for i := range x {
			x[i] = replaceNUL(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[strings.ReplaceAll(k, "\x00", "\uFFFD")] = replaceNUL(e)
		}
		return out
	}
	return v
}
