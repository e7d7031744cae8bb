package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/events"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
)

func validOSType(s string) bool {
	return s == protocol.OSLinux || s == protocol.OSWindows || s == protocol.OSDarwin
}

func (a *API) registerAgent(w http.ResponseWriter, r *http.Request) {
	var req protocol.RegisterRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateRegister(req); e != nil {
		writeError(w, e)
		return
	}
	reg, err := a.d.Auth.RegisterAgent(r.Context(), req, clientIP(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	keys, err := a.publicKeyList(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.d.Logger.InfoContext(r.Context(), "agent registered", "agent_id", reg.Agent.ID, "hostname", reg.Agent.Hostname, "reinstall", reg.Reinstall)
	a.d.Stream.Publish(events.AgentRegistered, map[string]string{"agent_id": reg.Agent.ID, "hostname": reg.Agent.Hostname})
	writeJSON(w, http.StatusCreated, protocol.RegisterResponse{AgentID: reg.Agent.ID, Token: reg.Token, RefreshToken: reg.RefreshToken,
		CheckInIntervalSeconds: reg.Agent.CheckInIntervalSeconds, PublicKeys: keys})
}

// validateRegister is the check registerAgent makes on a decoded body
// before it touches the store.
func validateRegister(req protocol.RegisterRequest) *apiError {
	if e := firstErr(
		field("registration_token", req.RegistrationToken, 256, true),
		field("hostname", req.Hostname, 255, true),
		field("os_version", req.OSVersion, 255, false),
		field("os_arch", req.OSArch, 32, false),
		field("agent_version", req.AgentVersion, 64, false),
	); e != nil {
		return e
	}
	if !validOSType(req.OSType) {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"os_type\" must be linux, windows or darwin.")
	}
	if !protocol.ValidMachineID(req.MachineID) {
		return errInvalidMachineID
	}
	return nil
}

func (a *API) renewAgent(w http.ResponseWriter, r *http.Request) {
	mid := r.Header.Get(protocol.HeaderMachineID)
	if mid == "" {
		writeError(w, errf(http.StatusUnauthorized, "unauthorized", "Renewal needs the %s header.", protocol.HeaderMachineID))
		return
	}
	if !protocol.ValidMachineID(mid) {
		writeError(w, errInvalidMachineID)
		return
	}
	var req protocol.RenewRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateRenew(req); e != nil {
		writeError(w, e)
		return
	}
	res, err := a.d.Auth.RenewAgent(r.Context(), req, mid)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// validateRenew is the check renewAgent makes on a decoded body. An agent id
// that is not a UUID is answered like an unknown agent: 401.
func validateRenew(req protocol.RenewRequest) *apiError {
	if e := firstErr(field("agent_id", req.AgentID, 64, true), field("refresh_token", req.RefreshToken, 256, true)); e != nil {
		return e
	}
	if _, err := uuid.Parse(req.AgentID); err != nil {
		return errUnauthorized
	}
	return nil
}

func (a *API) listAgents(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	pg, e := parsePage(r)
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	f := store.AgentFilter{Status: q.Get("status"), OSType: q.Get("os"), Hostname: q.Get("hostname"), Sort: q.Get("sort"), Page: pg,
		UpdateStatus: q.Get("update_status"), PackageType: q.Get("package_type")}
	if f.PackageType != "" && !slices.Contains(protocol.PackageTypes, f.PackageType) {
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "package_type must be one of %s.", strings.Join(protocol.PackageTypes, ", ")))
		return
	}
	if f.UpdateStatus != "" && !slices.Contains(store.AgentUpdateStatuses, f.UpdateStatus) {
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "update_status must be one of %s.", strings.Join(store.AgentUpdateStatuses, ", ")))
		return
	}
	switch q.Get("has_critical") {
	case "":
	case "true":
		f.HasCritical = new(true)
	case "false":
		f.HasCritical = new(false)
	default:
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "has_critical must be true or false."))
		return
	}
	switch f.Status {
	case "", store.StatusOnline, store.StatusOffline, store.StatusStale:
	default:
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "status must be online, offline or stale."))
		return
	}
	if f.OSType != "" && !validOSType(f.OSType) {
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "os must be linux, windows or darwin."))
		return
	}
	if e := field("hostname", f.Hostname, 255, false); e != nil {
		e.Code = "invalid_query"
		writeError(w, e)
		return
	}
	if _, ok := store.SortableAgentFields[trimDash(f.Sort)]; f.Sort != "" && !ok {
		writeError(w, errf(http.StatusBadRequest, "invalid_query", "sort must be one of %s, optionally prefixed with '-'.", strings.Join(agentSortKeys(), ", ")))
		return
	}
	agents, total, err := a.d.Store.ListAgents(r.Context(), f, a.d.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[store.Agent]{Items: agents, Total: total, NextCursor: nextCursor(pg, len(agents), total)})
}

// agentSortKeys lists the agent list's sort keys, sorted.
func agentSortKeys() []string {
	keys := make([]string, 0, len(store.SortableAgentFields))
	for k := range store.SortableAgentFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func trimDash(s string) string {
	if len(s) > 0 && s[0] == '-' {
		return s[1:]
	}
	return s
}

func (a *API) getAgent(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	ag, err := a.d.Store.GetAgent(r.Context(), id, a.d.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	up, err := a.d.Store.GetAgentUpgrade(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, agentDetail{Agent: ag, Upgrade: up})
}

func (a *API) deleteAgent(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	a.actOnID(w, r, p, "agent.delete", "agent", a.d.Store.DeleteAgent)
}

type rebindRequest struct {
	MachineID string `json:"machine_id"`
}

func (a *API) rebindAgent(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var req rebindRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := validateRebind(req); e != nil {
		writeError(w, e)
		return
	}
	ag, err := a.d.Store.RebindAgent(r.Context(), id, req.MachineID, a.d.Now(), p.Audit("agent.rebind", "agent", id, clientIP(r)))
	if err == nil {
		// Answer the agent as GET /api/v1/agents/{id} shows it.
		ag, err = a.d.Store.GetAgent(r.Context(), id, a.d.Now())
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ag)
}

// validateRebind is the check rebindAgent makes on a decoded body.
func validateRebind(req rebindRequest) *apiError {
	if !protocol.ValidMachineID(req.MachineID) {
		return errInvalidMachineID
	}
	return nil
}

func (a *API) checkIn(w http.ResponseWriter, r *http.Request, ag store.AgentAuth) {
	ver := r.Header.Get(protocol.HeaderAgentVersion)
	if e := field(protocol.HeaderAgentVersion, ver, 64, false); e != nil {
		writeError(w, e)
		return
	}
	wait := 0
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxWaitSeconds {
			writeError(w, errf(http.StatusBadRequest, "invalid_query", "wait must be a whole number of seconds from 0 to %d.", MaxWaitSeconds))
			return
		}
		wait = n
	}
	acks, e := parseAcks(r)
	if e != nil {
		writeError(w, e)
		return
	}
	cmds, err := a.d.Store.CheckInAgentAck(r.Context(), ag, ver, acks, a.d.Now())
	if err == nil {
		a.d.Stream.CheckedIn(ag.ID, a.d.Now()) // in-process, coalesced, never blocks
	}
	if err == nil && len(cmds) == 0 && wait > 0 && a.d.Hub != nil {
		cmds, err = a.waitForCommands(r.Context(), ag.ID, time.Duration(wait)*time.Second)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := protocol.CheckInResponse{Commands: make([]protocol.SignedCommand, len(cmds)), CheckInIntervalSeconds: ag.CheckInIntervalSeconds}
	for i, c := range cmds {
		out.Commands[i] = protocol.SignedCommand{ID: c.ID, AgentID: c.AgentID, Type: c.Type, Params: json.RawMessage(c.Params),
			IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, KeyID: c.KeyID, Signature: c.Signature}
	}
	writeJSON(w, http.StatusOK, out)
}

// parseAcks reads the check-in's acknowledgements: ?ack=id1,id2,… (the
// parameter may repeat), each a command id (UUID), at most
// protocol.MaxAcksPerCheckIn in all; duplicates are dropped. Anything else
// is 400 invalid_query.
func parseAcks(r *http.Request) ([]string, *apiError) {
	vals := r.URL.Query()[protocol.QueryAck]
	if len(vals) == 0 {
		return nil, nil
	}
	bad := errf(http.StatusBadRequest, "invalid_query",
		"ack must be a comma-separated list of at most %d command ids.", protocol.MaxAcksPerCheckIn)
	var out []string
	seen := map[string]bool{}
	for _, v := range vals {
		if v == "" {
			continue
		}
		for rest, more := v, true; more; {
			var id string
			id, rest, more = strings.Cut(rest, ",")
			if !protocol.ValidCommandID(id) {
				return nil, bad
			}
			id = strings.ToLower(id)
			if seen[id] {
				continue
			}
			if len(out) == protocol.MaxAcksPerCheckIn {
				return nil, bad
			}
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

func (a *API) systemReport(w http.ResponseWriter, r *http.Request, ag store.AgentAuth) {
	var rep protocol.SystemReport
	if e := decodeJSON(w, r, MaxBodyBytes, &rep); e != nil {
		writeError(w, e)
		return
	}
	if e := validateSystemReport(rep); e != nil {
		writeError(w, e)
		return
	}
	// Store our own re-encoding, never the agent's bytes.
	b, err := json.Marshal(rep)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.d.Store.SaveSystemInfo(r.Context(), ag.ID, b, a.d.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func validateSystemReport(rep protocol.SystemReport) *apiError {
	if rep.OSType != "" && !validOSType(rep.OSType) {
		return errf(http.StatusBadRequest, "invalid_field", "Field \"os_type\" must be linux, windows or darwin.")
	}
	if len(rep.Disks) > 256 || len(rep.PackageManagers) > 64 {
		return errf(http.StatusBadRequest, "invalid_field", "A system report lists at most 256 disks and 64 package managers.")
	}
	if rep.CPUCores < 0 || rep.MemoryBytes < 0 || rep.UptimeSeconds < 0 {
		return errf(http.StatusBadRequest, "invalid_field", "cpu_cores, memory_bytes and uptime_seconds cannot be negative.")
	}
	checks := []*apiError{
		field("os_version", rep.OSVersion, 255, false), field("os_arch", rep.OSArch, 32, false),
		field("kernel", rep.Kernel, 255, false), field("hostname", rep.Hostname, 255, false), field("cpu_model", rep.CPUModel, 255, false),
	}
	for _, d := range rep.Disks {
		if d.TotalBytes < 0 || d.UsedBytes < 0 {
			return errf(http.StatusBadRequest, "invalid_field", "Disk sizes cannot be negative.")
		}
		checks = append(checks, field("disks.mount", d.Mount, 1024, true), field("disks.filesystem", d.Filesystem, 64, false))
	}
	for _, pm := range rep.PackageManagers {
		checks = append(checks, field("package_managers", pm, 32, true))
	}
	return firstErr(checks...)
}

// MaxWaitSeconds bounds a long-polling check-in (SPEC §4).
const MaxWaitSeconds = 60

// waitForCommands holds a check-in until a command for the agent is queued
// (on this replica, or on another one through PostgreSQL notifications), the
// wait ends, the client leaves or the server shuts down.
func (a *API) waitForCommands(ctx context.Context, agentID string, wait time.Duration) ([]store.Command, error) {
	wake, unsubscribe := a.d.Hub.Subscribe(agentID)
	defer unsubscribe()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Checked after subscribing, so a command queued between the first
		// claim and the subscription is not missed.
		pending, err := a.d.Store.HasPending(ctx, agentID)
		if err != nil {
			return nil, err
		}
		if pending {
			cmds, err := a.d.Store.ClaimPending(ctx, agentID, a.d.Now())
			if err != nil || len(cmds) > 0 {
				return cmds, err
			}
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, nil
		case <-a.stopping:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
