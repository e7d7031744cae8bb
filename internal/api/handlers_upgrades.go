package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/agentupgrade"
	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
)

// upgradeRequest is the body of POST /api/v1/agents/upgrade: agent_ids (one
// agent or a selection) or all_outdated (every agent older than the binary
// served for its platform); version, when given, must be the version
// served; rollback allows a downgrade of the listed agents.
type upgradeRequest struct {
	AgentIDs    []string `json:"agent_ids,omitempty"`
	AllOutdated bool     `json:"all_outdated,omitempty"`
	Version     string   `json:"version,omitempty"`
	Rollback    bool     `json:"rollback,omitempty"`
}

// upgradeResponse lists the upgrades queued and the agents left alone.
type upgradeResponse struct {
	Queued  []agentupgrade.Queued  `json:"queued"`
	Skipped []agentupgrade.Skipped `json:"skipped"`
}

// retryResponse is the answer of POST /api/v1/agents/{id}/upgrade/retry.
type retryResponse struct {
	Upgrade *store.AgentUpgrade    `json:"upgrade"`
	Queued  []agentupgrade.Queued  `json:"queued"`
	Skipped []agentupgrade.Skipped `json:"skipped"`
}

// agentDetail is one agent with its latest self-upgrade.
type agentDetail struct {
	store.Agent
	// Upgrade is the agent's latest self-upgrade (null when none): its
	// status, and when it failed, the reason and whether automatic
	// upgrades of the agent are blocked until an admin retries.
	Upgrade *store.AgentUpgrade `json:"upgrade"`
}

// validateUpgrade checks the body and returns the agent ids (lower case,
// deduplicated).
func validateUpgrade(req upgradeRequest) ([]string, *apiError) {
	if (len(req.AgentIDs) > 0) == req.AllOutdated {
		return nil, errf(http.StatusBadRequest, "invalid_field", "Send either \"agent_ids\" (1 to %d agents) or \"all_outdated\": true.", MaxBulkAgents)
	}
	if req.Version != "" && !protocol.ValidVersion(req.Version) {
		return nil, errf(http.StatusBadRequest, "invalid_field", "Field \"version\" must be a semantic version such as 1.4.2.")
	}
	if req.AllOutdated && req.Rollback {
		return nil, errf(http.StatusBadRequest, "invalid_field", "\"rollback\" needs explicit \"agent_ids\": an outdated agent is never downgraded.")
	}
	if len(req.AgentIDs) > MaxBulkAgents {
		return nil, errf(http.StatusBadRequest, "invalid_field", "Field \"agent_ids\" must list 1 to %d agents.", MaxBulkAgents)
	}
	seen := make(map[string]bool, len(req.AgentIDs))
	ids := make([]string, 0, len(req.AgentIDs))
	for _, id := range req.AgentIDs {
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 {
			return nil, errf(http.StatusBadRequest, "invalid_field", "agent_ids must be agent UUIDs; %q is not.", truncateText(id, 40))
		}
		if s := u.String(); !seen[s] {
			seen[s] = true
			ids = append(ids, s)
		}
	}
	return ids, nil
}

// planner builds the upgrade planner over the API's dependencies.
func (a *API) planner() *agentupgrade.Planner {
	return &agentupgrade.Planner{Store: a.d.Store, Binaries: a.d.AgentBinaries, Key: a.d.Keys.Active(), PublicURL: a.d.PublicURL,
		Now: a.d.Now, Log: a.d.Logger}
}

func (a *API) upgradeAgents(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req upgradeRequest
	if e := decodeJSON(w, r, MaxReportBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	ids, e := validateUpgrade(req)
	if e != nil {
		writeError(w, e)
		return
	}
	audit := p.Audit("agent.upgrade", "agent", "", clientIP(r))
	if len(ids) == 1 {
		audit.TargetID = ids[0]
	}
	res, ok := a.queueUpgrades(w, r, agentupgrade.Request{AgentIDs: ids, AllOutdated: req.AllOutdated, Version: req.Version,
		Rollback: req.Rollback, Trigger: store.TriggerManual, Actor: p.User.Username, Audit: audit})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, upgradeResponse{Queued: res.Queued, Skipped: res.Skipped})
}

// queueUpgrades runs the planner with the command expiry setting and wakes
// the agents that got a command; it answers the errors itself.
func (a *API) queueUpgrades(w http.ResponseWriter, r *http.Request, req agentupgrade.Request) (agentupgrade.Result, bool) {
	set, err := a.settings(r)
	if err != nil {
		a.fail(w, r, err)
		return agentupgrade.Result{}, false
	}
	req.Expiry = time.Duration(set.CommandExpirySeconds) * time.Second
	res, err := a.planner().Queue(r.Context(), req)
	var unknown *store.UnknownAgentsError
	if errors.As(err, &unknown) {
		writeError(w, errf(http.StatusNotFound, "unknown_agents", "%d of the agent ids are not registered agents, e.g. %s.", len(unknown.IDs), unknown.IDs[0]))
		return res, false
	}
	if err != nil {
		a.fail(w, r, err)
		return res, false
	}
	if a.d.Hub != nil && len(res.AgentIDs) > 0 {
		a.d.Hub.Publish(res.AgentIDs...)
	}
	return res, true
}

// retryUpgrade lifts the block a failed upgrade put on automatic upgrades
// of the agent and upgrades it again now.
func (a *API) retryUpgrade(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	ts, err := a.d.Store.UpgradeTargets(r.Context(), store.UpgradeTargetFilter{IDs: []string{id}, Now: a.d.Now()})
	var unknown *store.UnknownAgentsError
	if errors.As(err, &unknown) {
		writeError(w, errf(http.StatusNotFound, "not_found", "No such agent."))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	u := ts[0].Upgrade
	switch {
	case u == nil:
		writeError(w, errf(http.StatusConflict, "no_upgrade", "This agent has never been upgraded; upgrade it with POST /api/v1/agents/upgrade."))
		return
	case u.Status == store.UpgradeInProgress:
		writeError(w, errf(http.StatusConflict, "upgrade_in_progress", "An upgrade of this agent to %s is under way.", u.TargetVersion))
		return
	case u.Status == store.UpgradeSucceeded:
		writeError(w, errf(http.StatusConflict, "nothing_to_retry", "The last upgrade of this agent (to %s) succeeded; there is nothing to retry.", u.TargetVersion))
		return
	}
	if _, err := a.d.Store.ClearUpgradeBlock(r.Context(), id, a.d.Now(), p.Audit("agent.upgrade_unblock", "agent", id, clientIP(r))); err != nil {
		a.fail(w, r, err)
		return
	}
	res, ok := a.queueUpgrades(w, r, agentupgrade.Request{AgentIDs: []string{id}, Trigger: store.TriggerRetry, Actor: p.User.Username,
		Audit: p.Audit("agent.upgrade", "agent", id, clientIP(r))})
	if !ok {
		return
	}
	up, err := a.d.Store.GetAgentUpgrade(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, retryResponse{Upgrade: up, Queued: res.Queued, Skipped: res.Skipped})
}

// settleUpgrade brings the agent's upgrade in line with the result of its
// update_agent command (the jobs do it too, so a failure here is only
// logged).
func (a *API) settleUpgrade(ctx context.Context, c store.CommandRecord) {
	if c.Type != protocol.CmdUpdateAgent {
		return
	}
	changed, err := a.d.Store.SettleUpgrades(ctx, a.d.Now(), c.ID)
	if err != nil {
		a.d.Logger.ErrorContext(ctx, "settling an agent upgrade failed; the background job retries", "command_id", c.ID, "error", err)
		return
	}
	for _, u := range changed {
		a.d.Logger.InfoContext(ctx, "agent upgrade settled", "agent_id", u.AgentID, "status", u.Status, "target_version", u.TargetVersion,
			"auto_upgrade_blocked", u.AutoUpgradeBlocked, "reason", u.FailureReason)
	}
}

// validateUpdateAgentParams checks update_agent params queued through
// POST /api/v1/commands (the upgrade routes build their own).
func validateUpdateAgentParams(p *protocol.UpdateAgentParams) *apiError {
	if !protocol.ValidVersion(p.Version) {
		return errf(http.StatusBadRequest, "invalid_field", "update_agent needs a semantic \"version\" such as 1.4.2.")
	}
	if len(p.SHA256) != 64 || strings.Trim(p.SHA256, "0123456789abcdef") != "" {
		return errf(http.StatusBadRequest, "invalid_field", "update_agent needs \"sha256\": 64 lowercase hexadecimal characters.")
	}
	u := p.URL
	if !strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "//") {
		return errf(http.StatusBadRequest, "invalid_field", "update_agent needs \"url\": http(s), or a path starting with / on this server.")
	}
	return firstErr(field("url", p.URL, 2048, true), field("signature", p.Signature, 200, true), field("key_id", p.KeyID, 64, true))
}
