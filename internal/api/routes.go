package api

import (
	"net/http"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
)

// registerRoutes is the one list of every route the server answers.
func (a *API) registerRoutes() {
	// Public.
	a.public(Route{Method: "GET", Path: "/health", Summary: "Database liveness: 200 when the database answers, 503 otherwise", Response: healthResponse{}}, a.health)
	a.public(Route{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics (bearer token when REDFLAG_METRICS_TOKEN is set)"}, a.metrics)
	a.public(Route{Method: "GET", Path: "/api/v1/info", Summary: "Server version and schema", Response: protocol.Info{}}, a.info)
	a.public(Route{Method: "GET", Path: "/api/v1/openapi.json", Summary: "This API, as OpenAPI 3"}, a.openAPI)
	a.public(Route{Method: "GET", Path: "/api/v1/public-keys", Summary: "Command-signing public keys", Response: protocol.PublicKeys{}}, a.publicKeys)
	a.public(Route{Method: "GET", Path: "/api/v1/setup", Summary: "Whether first-admin setup is still open", Response: setupStatus{}}, a.setupStatus)
	a.public(Route{Method: "POST", Path: "/api/v1/setup", Summary: "Create the first admin with the one-time setup token", Request: setupRequest{}, Response: userResponse{}, Status: http.StatusCreated}, a.setup)
	a.public(Route{Method: "POST", Path: "/api/v1/auth/login", Summary: "Open a dashboard session (also usable as a bearer token)", Request: loginRequest{}, Response: loginResponse{}}, a.login)
	a.public(Route{Method: "POST", Path: "/api/v1/agents/register", Summary: "Enrol an agent with a registration token", Request: protocol.RegisterRequest{}, Response: protocol.RegisterResponse{}, Status: http.StatusCreated}, a.registerAgent)
	a.public(Route{Method: "POST", Path: "/api/v1/agents/renew", Summary: "Exchange a refresh token (with X-Machine-ID) for a new agent token", Request: protocol.RenewRequest{}, Response: protocol.RenewResponse{}}, a.renewAgent)
	a.public(Route{Method: "GET", Path: "/install/{platform}", Summary: "Agent install script for linux, windows (PowerShell) or darwin (?token=&arch=&action=install|uninstall)"}, a.installScript)
	a.public(Route{Method: "GET", Path: "/api/v1/downloads/agent/{os}/{arch}", Summary: "Agent binary, with X-Content-SHA256, X-Agent-Version, X-Signature and X-Key-ID headers (SPEC §5 signature)"}, a.downloadAgent)

	// Users: session.
	a.user(Route{Method: "POST", Path: "/api/v1/auth/logout", Summary: "End the current session", Status: http.StatusNoContent}, a.logout)
	a.user(Route{Method: "GET", Path: "/api/v1/me", Summary: "The signed-in user", Response: userResponse{}}, a.me)
	a.user(Route{Method: "POST", Path: "/api/v1/me/password", Summary: "Change the password; other sessions end", Request: passwordRequest{}, Status: http.StatusNoContent}, a.changePassword)
	a.user(Route{Method: "GET", Path: "/api/v1/api-tokens", Summary: "The user's API tokens", Response: list[store.UserToken]{}}, a.listAPITokens)
	a.user(Route{Method: "POST", Path: "/api/v1/api-tokens", Summary: "Create an API token (its text is shown only here)", Request: apiTokenRequest{}, Response: apiTokenResponse{}, Status: http.StatusCreated}, a.createAPIToken)
	a.user(Route{Method: "DELETE", Path: "/api/v1/api-tokens/{id}", Summary: "Revoke an API token", Status: http.StatusNoContent}, a.deleteAPIToken)

	// Users: registration tokens.
	a.user(Route{Method: "GET", Path: "/api/v1/registration-tokens", Summary: "List registration tokens", Response: list[registrationToken]{}}, a.listRegistrationTokens)
	a.user(Route{Method: "POST", Path: "/api/v1/registration-tokens", Summary: "Create a registration token (its text is shown only here)", Request: registrationTokenRequest{}, Response: registrationToken{}, Status: http.StatusCreated}, a.createRegistrationToken)
	a.user(Route{Method: "POST", Path: "/api/v1/registration-tokens/{id}/revoke", Summary: "Revoke a registration token", Response: registrationToken{}}, a.revokeRegistrationToken)
	a.user(Route{Method: "DELETE", Path: "/api/v1/registration-tokens/{id}", Summary: "Delete a registration token", Status: http.StatusNoContent}, a.deleteRegistrationToken)

	// Users: fleet.
	a.user(Route{Method: "GET", Path: "/api/v1/agents", Summary: "List agents (filters: status, os, hostname, update_status, has_critical, package_type = agents with an open update of that package type; sort by hostname, os_type, status, update_status, pending_updates, critical_updates, agent_version, last_seen_at or registered_at, '-' for descending; paged)", Response: list[store.Agent]{}}, a.listAgents)
	a.user(Route{Method: "GET", Path: "/api/v1/agents/{id}", Summary: "One agent with its inventory and its latest self-upgrade", Response: agentDetail{}}, a.getAgent)
	a.user(Route{Method: "DELETE", Path: "/api/v1/agents/{id}", Summary: "Delete an agent and its data", Status: http.StatusNoContent}, a.deleteAgent)
	a.user(Route{Method: "GET", Path: "/api/v1/updates", Summary: "List updates (filters: agent_id, severity, package_type, status (or open), q; sort; paged)", Response: list[store.UpdateRecord]{}}, a.listUpdates)
	a.user(Route{Method: "GET", Path: "/api/v1/updates/{id}", Summary: "One update with its history", Response: store.UpdateDetail{}}, a.getUpdate)
	a.user(Route{Method: "POST", Path: "/api/v1/updates/approve", Summary: "Approve updates; queues one signed install_updates per agent (dry_run: preview first)", Request: approveRequest{}, Response: store.UpdateActionResult{}}, a.approveUpdates)
	a.user(Route{Method: "POST", Path: "/api/v1/updates/reject", Summary: "Reject updates", Request: updateIDsRequest{}, Response: store.UpdateActionResult{}}, a.updateAction(store.ActionReject))
	a.user(Route{Method: "POST", Path: "/api/v1/updates/ignore", Summary: "Ignore updates", Request: updateIDsRequest{}, Response: store.UpdateActionResult{}}, a.updateAction(store.ActionIgnore))
	a.user(Route{Method: "POST", Path: "/api/v1/updates/confirm", Summary: "Accept the extra packages a dry run found; queues confirm_dependencies per agent", Request: updateIDsRequest{}, Response: store.UpdateActionResult{}}, a.updateAction(store.ActionConfirm))
	a.user(Route{Method: "POST", Path: "/api/v1/agents/upgrade", Summary: "Upgrade agents to the binary served for their platform: agent_ids, or all_outdated (signed update_agent commands)", Request: upgradeRequest{}, Response: upgradeResponse{}}, a.upgradeAgents)
	a.user(Route{Method: "POST", Path: "/api/v1/agents/{id}/upgrade/retry", Summary: "Retry a failed agent upgrade: lifts the block on automatic upgrades and upgrades the agent now", Response: retryResponse{}}, a.retryUpgrade)
	a.user(Route{Method: "POST", Path: "/api/v1/agents/{id}/rebind", Summary: "Bind an agent to a new machine id", Request: rebindRequest{}, Response: store.Agent{}}, a.rebindAgent)

	// Users: commands and settings.
	a.user(Route{Method: "GET", Path: "/api/v1/commands", Summary: "List commands (filters: agent_id, status, type; paged)", Response: list[store.CommandRecord]{}}, a.listCommands)
	a.user(Route{Method: "POST", Path: "/api/v1/commands", Summary: "Queue a signed command for one agent or many", Request: createCommandsRequest{}, Response: commandsResponse{}, Status: http.StatusCreated}, a.createCommands)
	a.user(Route{Method: "GET", Path: "/api/v1/commands/{id}", Summary: "One command with its result", Response: store.CommandRecord{}}, a.getCommand)
	a.user(Route{Method: "POST", Path: "/api/v1/commands/{id}/cancel", Summary: "Cancel a pending command", Response: store.CommandRecord{}}, a.cancelCommand)
	a.user(Route{Method: "GET", Path: "/api/v1/settings", Summary: "Server settings", Response: store.Settings{}}, a.getSettings)
	a.user(Route{Method: "PUT", Path: "/api/v1/settings", Summary: "Change server settings (fields not sent keep their value)", Request: store.Settings{}, Response: store.Settings{}}, a.putSettings)

	// Users: security and audit.
	a.user(Route{Method: "GET", Path: "/api/v1/security/keys", Summary: "Signing keys", Response: list[store.SigningKey]{}}, a.securityKeys)
	a.user(Route{Method: "POST", Path: "/api/v1/security/keys/rotate", Summary: "Rotate the signing key (admin): a new key becomes active, the old one retires after key_rotation_grace_seconds; every agent gets a rotate_key command signed by the old key", Response: rotateKeyResponse{}}, a.rotateKey)
	a.user(Route{Method: "GET", Path: "/api/v1/audit", Summary: "Audit log, newest first (filters: action, actor_id, target_id)", Response: cursorList[store.Audit]{}}, a.listAudit)

	// Users: dashboard.
	a.user(Route{Method: "GET", Path: "/api/v1/stats/overview", Summary: "Fleet figures: agents by status and update status, pending updates by severity and package type, reboots, installs of the last 24 h", Response: store.Overview{}}, a.statsOverview)
	a.user(Route{Method: "GET", Path: "/api/v1/stats/trends", Summary: "Daily snapshots of pending updates and installs, ascending (?days=1–365, default 90; days without a snapshot omitted)", Response: trendsResponse{}}, a.statsTrends)
	a.user(Route{Method: "GET", Path: "/api/v1/events", Summary: "Live events as Server-Sent Events (text/event-stream): agent_checked_in, agent_registered, scan_reported, command_queued, command_finished, updates_changed, resync; a keepalive comment every 15 s"}, a.events)

	// Agents.
	a.agent(Route{Method: "GET", Path: "/api/v1/agents/{id}/commands", Summary: "Check in: mark the agent seen and claim its due signed commands", Response: protocol.CheckInResponse{}}, a.checkIn)
	a.agent(Route{Method: "POST", Path: "/api/v1/agents/{id}/commands/{command_id}/result", Summary: "Report a command's result (idempotent)", Request: protocol.CommandResult{}, Response: resultResponse{}}, a.commandResult)
	a.agent(Route{Method: "POST", Path: "/api/v1/agents/{id}/reports/updates", Summary: "Report one scanner's updates (full, or unchanged_hash only); 409 report_hash_unknown asks for the full report", Request: protocol.UpdateReport{}, Response: protocol.UpdateReportResponse{}}, a.updateReport)
	a.agent(Route{Method: "POST", Path: "/api/v1/agents/{id}/reports/system", Summary: "Report the system inventory", Request: protocol.SystemReport{}, Status: http.StatusNoContent}, a.systemReport)
}
