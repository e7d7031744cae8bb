package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Agent errors.
var (
	// ErrRegistrationRefused covers an unknown, expired, revoked or exhausted
	// registration token; callers get one answer so the token's state does
	// not leak to strangers.
	ErrRegistrationRefused = errors.New("registration token is unknown, expired, revoked or out of seats")
	ErrMachineMismatch     = errors.New("machine id does not match the one bound to this agent")
)

// Agent statuses, derived from the last check-in.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
	StatusStale   = "stale"
)

// StaleAfter is how long an agent may be silent before it counts as stale
// rather than merely offline.
const StaleAfter = 7 * 24 * time.Hour

// Agent is one enrolled machine.
type Agent struct {
	ID                     string          `json:"id"`
	Hostname               string          `json:"hostname"`
	OSType                 string          `json:"os_type"`
	OSVersion              string          `json:"os_version"`
	OSArch                 string          `json:"os_arch"`
	AgentVersion           string          `json:"agent_version"`
	MachineID              string          `json:"machine_id"`
	Status                 string          `json:"status"`
	CheckInIntervalSeconds int             `json:"check_in_interval_seconds"`
	RegisteredAt           time.Time       `json:"registered_at"`
	LastSeenAt             *time.Time      `json:"last_seen_at"`
	SystemInfo             json.RawMessage `json:"system_info,omitempty"`
	SystemInfoAt           *time.Time      `json:"system_info_at,omitempty"`
	// Update state (agent list and detail only): UpdateStatus is one of
	// AgentUpdateStatuses; PendingUpdates counts the open updates; Scans
	// (detail only) is each scanner's latest scan.
	UpdateStatus    string        `json:"update_status,omitempty"`
	RebootRequired  bool          `json:"reboot_required"`
	PendingUpdates  *UpdateCounts `json:"pending_updates,omitempty"`
	Scans           []AgentScan   `json:"scans,omitempty"`
	TokenGeneration int64         `json:"-"`
	offlineAfter    *time.Time
}

// OfflineAfter is when an agent seen at lastSeen with this interval stops
// counting as online: two missed check-ins plus a minute of slack.
func OfflineAfter(lastSeen time.Time, intervalSeconds int) time.Time {
	return T(lastSeen.Add(time.Duration(2*intervalSeconds+60) * time.Second))
}

func (a *Agent) deriveStatus(now time.Time) {
	switch {
	case a.offlineAfter != nil && a.offlineAfter.After(now):
		a.Status = StatusOnline
	case a.LastSeenAt != nil && a.LastSeenAt.After(now.Add(-StaleAfter)):
		a.Status = StatusOffline
	default:
		a.Status = StatusStale
	}
}

const agentCols = `id, hostname, os_type, os_version, os_arch, agent_version, machine_id, token_generation,
	check_in_interval_seconds, registered_at, last_seen_at, offline_after`

func scanAgent(sc interface{ Scan(...any) error }, now time.Time, extra ...any) (Agent, error) {
	var a Agent
	var seen, off sql.NullTime
	err := sc.Scan(append([]any{&a.ID, &a.Hostname, &a.OSType, &a.OSVersion, &a.OSArch, &a.AgentVersion, &a.MachineID,
		&a.TokenGeneration, &a.CheckInIntervalSeconds, &a.RegisteredAt, &seen, &off}, extra...)...)
	a.RegisteredAt, a.LastSeenAt, a.offlineAfter = a.RegisteredAt.UTC(), timePtr(seen), timePtr(off)
	a.deriveStatus(now)
	return a, err
}

// RegisterParams is everything one registration writes.
type RegisterParams struct {
	RegistrationTokenHash string
	NewAgentID            string // used only when the machine id is new
	Agent                 Agent  // hostname, os, version, machine id, interval
	RefreshTokenID        string
	RefreshTokenHash      string
	RefreshExpiresAt      time.Time
	Now                   time.Time
	IP                    string
}

// RegisterAgent enrols an agent in one transaction: it consumes a seat,
// creates the agent (or, for a machine id it already knows, keeps the agent
// id and history and bumps its token generation so earlier tokens die),
// replaces its refresh tokens and writes the audit row. reinstall reports the
// second case.
func (s *Store) RegisterAgent(ctx context.Context, p RegisterParams) (a Agent, reinstall bool, err error) {
	now := T(p.Now)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var tokenID string
		err := tx.QueryRowContext(ctx, `UPDATE registration_tokens SET seats_used = seats_used + 1
			WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND seats_used < seats
			RETURNING id`, p.RegistrationTokenHash, now).Scan(&tokenID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrRegistrationRefused
		}
		if err != nil {
			return fmt.Errorf("consuming registration seat: %w", err)
		}
		in := p.Agent
		a, err = scanAgent(tx.QueryRowContext(ctx, `INSERT INTO agents (id, hostname, os_type, os_version, os_arch, agent_version,
				machine_id, token_generation, check_in_interval_seconds, registration_token_id, registered_at, last_seen_at, offline_after)
			VALUES ($1,$2,$3,$4,$5,$6,$7,1,$8,$9,$10,$10,$11)
			ON CONFLICT (machine_id) DO UPDATE SET hostname = excluded.hostname, os_type = excluded.os_type,
				os_version = excluded.os_version, os_arch = excluded.os_arch, agent_version = excluded.agent_version,
				token_generation = agents.token_generation + 1, registration_token_id = excluded.registration_token_id,
				last_seen_at = excluded.last_seen_at, offline_after = excluded.offline_after
			RETURNING `+agentCols, p.NewAgentID, in.Hostname, in.OSType, in.OSVersion, in.OSArch, in.AgentVersion,
			in.MachineID, in.CheckInIntervalSeconds, tokenID, now, OfflineAfter(now, in.CheckInIntervalSeconds)), now)
		if err != nil {
			return fmt.Errorf("saving agent: %w", err)
		}
		reinstall = a.ID != p.NewAgentID
		if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE agent_id = $1", a.ID); err != nil {
			return fmt.Errorf("revoking earlier refresh tokens: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (id, agent_id, token_hash, created_at, expires_at)
			VALUES ($1,$2,$3,$4,$5)`, p.RefreshTokenID, a.ID, p.RefreshTokenHash, now, T(p.RefreshExpiresAt)); err != nil {
			return fmt.Errorf("storing refresh token: %w", err)
		}
		action := "agent.register"
		if reinstall {
			action = "agent.reregister"
		}
		return insertAudit(ctx, tx, &Audit{At: now, ActorType: "agent", ActorID: a.ID, ActorName: a.Hostname,
			Action: action, TargetType: "agent", TargetID: a.ID, IP: p.IP,
			Details: map[string]any{"registration_token_id": tokenID, "machine_id": a.MachineID}})
	})
	return a, reinstall, err
}

// RenewParams is one refresh-token exchange.
type RenewParams struct {
	AgentID      string
	OldHash      string
	MachineID    string
	NewID        string
	NewHash      string
	NewExpiresAt time.Time
	Now          time.Time
}

// RenewRefreshToken swaps a live refresh token for a new one (the old one
// stops working) and returns the agent. ErrNotFound: unknown, used or
// expired token; ErrMachineMismatch: right token, wrong machine.
func (s *Store) RenewRefreshToken(ctx context.Context, p RenewParams) (Agent, error) {
	now := T(p.Now)
	var a Agent
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var rid string
		var err error
		a, err = scanAgent(tx.QueryRowContext(ctx, `SELECT a.id, a.hostname, a.os_type, a.os_version, a.os_arch, a.agent_version,
				a.machine_id, a.token_generation, a.check_in_interval_seconds, a.registered_at, a.last_seen_at, a.offline_after, r.id
			FROM refresh_tokens r JOIN agents a ON a.id = r.agent_id
			WHERE r.token_hash = $1 AND r.agent_id = $2 AND r.expires_at > $3`, p.OldHash, p.AgentID, now), now, &rid)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("finding refresh token: %w", err)
		}
		if a.MachineID != p.MachineID {
			return ErrMachineMismatch
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE id = $1", rid)
		if err != nil {
			return fmt.Errorf("retiring refresh token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound // a concurrent renewal used it first
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (id, agent_id, token_hash, created_at, expires_at)
			VALUES ($1,$2,$3,$4,$5)`, p.NewID, a.ID, p.NewHash, now, T(p.NewExpiresAt)); err != nil {
			return fmt.Errorf("storing refresh token: %w", err)
		}
		return nil
	})
	return a, err
}

// AgentAuth is what every agent request checks: the bound machine id and
// the token generation. One primary-key read.
type AgentAuth struct {
	ID                     string
	MachineID              string
	TokenGeneration        int64
	CheckInIntervalSeconds int
	// What the check-in needs to decide whether it must write at all.
	AgentVersion string
	LastSeenAt   time.Time // zero when never seen
	HasPending   bool      // a pending command is waiting
	// HasUnacked: a command was handed out and its agent has not
	// acknowledged it yet, so it may be due for redelivery.
	HasUnacked bool
}

// AgentAuthByID reads the binding of one agent.
func (s *Store) AgentAuthByID(ctx context.Context, id string) (AgentAuth, error) {
	var a AgentAuth
	var seen sql.NullTime
	err := s.r.QueryRowContext(ctx, `SELECT a.id, a.machine_id, a.token_generation, a.check_in_interval_seconds, a.agent_version,
			a.last_seen_at, EXISTS (SELECT 1 FROM commands c WHERE c.agent_id = a.id AND c.status = 'pending'),
			EXISTS (SELECT 1 FROM commands c WHERE c.agent_id = a.id AND c.status = 'sent' AND c.acked_at IS NULL)
		FROM agents a WHERE a.id = $1`, id).
		Scan(&a.ID, &a.MachineID, &a.TokenGeneration, &a.CheckInIntervalSeconds, &a.AgentVersion, &seen, &a.HasPending, &a.HasUnacked)
	if seen.Valid {
		a.LastSeenAt = seen.Time.UTC()
	}
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("reading agent %s: %w", id, err)
	}
	return a, nil
}

// CheckIn marks the agent seen and claims its due commands in one
// transaction, so each command is handed out once. interval is the agent's
// check-in interval as read by AgentAuthByID on the same request.
func (s *Store) CheckIn(ctx context.Context, agentID, agentVersion string, interval int, now time.Time) (cmds []Command, err error) {
	return s.checkIn(ctx, agentID, agentVersion, interval, now, true, nil)
}

// DefaultCommandRedeliver is how long a command handed out but never
// acknowledged waits before a check-in offers it again (Options.CommandRedeliver).
const DefaultCommandRedeliver = 60 * time.Second

// SeenCoalesce is how long a recorded check-in stays fresh: a check-in
// within it of the last recorded one does not rewrite last_seen_at (status
// is judged in minutes, and the write is the check-in's main cost).
const SeenCoalesce = 30 * time.Second

// CheckInAgent is CheckInAgentAck without acknowledgements.
func (s *Store) CheckInAgent(ctx context.Context, a AgentAuth, agentVersion string, now time.Time) ([]Command, error) {
	return s.CheckInAgentAck(ctx, a, agentVersion, nil, now)
}

// CheckInAgentAck is the check-in's hot path, given the row AgentAuthByID
// read for this request and the command ids the agent acknowledges (at most
// a few hundred, validated by the caller): with nothing due, nothing to
// acknowledge and a fresh last_seen_at it writes nothing; otherwise one
// write transaction records the check-in, the acknowledgements and/or
// claims the due commands.
func (s *Store) CheckInAgentAck(ctx context.Context, a AgentAuth, agentVersion string, acks []string, now time.Time) ([]Command, error) {
	now = T(now)
	touch := a.LastSeenAt.IsZero() || now.Sub(a.LastSeenAt) >= SeenCoalesce || (agentVersion != "" && agentVersion != a.AgentVersion) ||
		len(acks) > 0
	claim := a.HasPending || a.HasUnacked
	switch {
	case touch:
		return s.checkIn(ctx, a.ID, agentVersion, a.CheckInIntervalSeconds, now, claim, acks)
	case claim:
		return s.ClaimPending(ctx, a.ID, now)
	}
	return []Command{}, nil
}

// ackCommands records that the agent received the commands ids (its own
// only; an id already acknowledged keeps its first time).
func ackCommands(ctx context.Context, tx *sql.Tx, agentID string, ids []string, now time.Time) error {
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		args := make([]any, 0, len(part)+2)
		args = append(args, now, agentID)
		ph := make([]string, len(part))
		for i, id := range part {
			args = append(args, id)
			ph[i] = fmt.Sprintf("$%d", i+3)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE commands SET acked_at = $1 WHERE agent_id = $2 AND acked_at IS NULL AND id IN ("+
			strings.Join(ph, ",")+")", args...); err != nil {
			return fmt.Errorf("recording acknowledgements: %w", err)
		}
	}
	return nil
}

func (s *Store) checkIn(ctx context.Context, agentID, agentVersion string, interval int, now time.Time, claim bool, acks []string) (cmds []Command, err error) {
	now = T(now)
	cmds = []Command{}
	const touch = `UPDATE agents SET last_seen_at = $1, offline_after = $2,
			agent_version = CASE WHEN $3 = '' THEN agent_version ELSE $3 END
		WHERE id = $4`
	if !claim && len(acks) == 0 {
		// One statement in autocommit: no BEGIN/COMMIT round trips.
		release, err := s.acquireWriter(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		res, err := s.w.ExecContext(ctx, touch, now, OfflineAfter(now, interval), agentVersion, agentID)
		if err != nil {
			return nil, fmt.Errorf("recording check-in: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, ErrNotFound
		}
		return cmds, nil
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, touch, now, OfflineAfter(now, interval), agentVersion, agentID)
		if err != nil {
			return fmt.Errorf("recording check-in: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if len(acks) > 0 {
			if err := ackCommands(ctx, tx, agentID, acks, now); err != nil {
				return err
			}
		}
		if !claim {
			return nil
		}
		cmds, err = claimCommands(ctx, tx, agentID, now, s.redeliver)
		return err
	})
	return cmds, err
}

// AgentFilter narrows ListAgents. Sort is one of SortableAgentFields,
// optionally prefixed with '-' for descending; ties break by id.
type AgentFilter struct {
	Status   string
	OSType   string
	Hostname string // case-insensitive substring
	// UpdateStatus is one of AgentUpdateStatuses.
	UpdateStatus string
	// HasCritical, when set, keeps agents with (true) or without (false)
	// an open critical update.
	HasCritical *bool
	// PackageType keeps agents with an open update of that package type
	// (one of protocol.PackageTypes).
	PackageType string
	Sort        string
	Page        Page
}

const hasCriticalSQL = "EXISTS (SELECT 1 FROM agent_update_counts c WHERE c.agent_id = agents.id AND c.severity = 'critical')"

// SortableAgentFields are the accepted AgentFilter.Sort keys: a column,
// or "" for keys whose ORDER BY expression depends on the time (status,
// update_status). The computed keys read the small per-agent
// agent_update_counts and agent_scans tables through their primary keys,
// never the updates table:
//   - status: online, offline, stale, then by last check-in;
//   - update_status: in the order of AgentUpdateStatuses;
//   - pending_updates: the number of open updates;
//   - critical_updates: the number of open critical updates.
var SortableAgentFields = map[string]string{
	"hostname": "lower(hostname)", "os_type": "os_type", "registered_at": "registered_at", "last_seen_at": "last_seen_at",
	"agent_version":    "agent_version",
	"pending_updates":  "(SELECT COALESCE(SUM(c.n), 0) FROM agent_update_counts c WHERE c.agent_id = agents.id)",
	"critical_updates": "(SELECT COALESCE(SUM(c.n), 0) FROM agent_update_counts c WHERE c.agent_id = agents.id AND c.severity = 'critical')",
	"status":           "", "update_status": "",
}

// agentSortSQL is the ORDER BY clause for a sort key; arg binds a value.
func agentSortSQL(sortKey string, now time.Time, nowUnix func() string, arg func(any) string) (string, error) {
	if sortKey == "" {
		return "registered_at DESC, id DESC", nil
	}
	key, dir := strings.TrimPrefix(sortKey, "-"), "ASC"
	if strings.HasPrefix(sortKey, "-") {
		dir = "DESC"
	}
	col, ok := SortableAgentFields[key]
	if !ok {
		return "", fmt.Errorf("sort %q: %w", sortKey, ErrInvalid)
	}
	switch key {
	case "status":
		n := arg(now)
		col = "(CASE WHEN offline_after > " + n + " THEN 0 WHEN last_seen_at > " + arg(now.Add(-StaleAfter)) + " THEN 1 ELSE 2 END) " + dir +
			", (CASE WHEN last_seen_at IS NULL THEN 1 ELSE 0 END) " + dir + ", last_seen_at"
	case "update_status":
		pairs := make([]string, 0, 2*len(AgentUpdateStatuses))
		for i, st := range AgentUpdateStatuses {
			pairs = append(pairs, "'"+st+"'", fmt.Sprint(i))
		}
		col = strings.NewReplacer(pairs...).Replace(updateStatusSQL(nowUnix()))
	}
	return col + " " + dir + ", id " + dir, nil
}

// ListAgents lists agents, filtered, sorted and paged in SQL, with the total
// number that match.
func (s *Store) ListAgents(ctx context.Context, f AgentFilter, now time.Time) ([]Agent, int, error) {
	now = T(now)
	p := f.Page.norm()
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	switch f.Status {
	case "":
	case StatusOnline:
		where = append(where, "offline_after > "+arg(now))
	case StatusOffline:
		where = append(where, "(offline_after IS NULL OR offline_after <= "+arg(now)+") AND last_seen_at > "+arg(now.Add(-StaleAfter)))
	case StatusStale:
		where = append(where, "(offline_after IS NULL OR offline_after <= "+arg(now)+") AND (last_seen_at IS NULL OR last_seen_at <= "+arg(now.Add(-StaleAfter))+")")
	default:
		return nil, 0, fmt.Errorf("status %q: %w", f.Status, ErrInvalid)
	}
	if f.OSType != "" {
		where = append(where, "os_type = "+arg(f.OSType))
	}
	if f.Hostname != "" {
		where = append(where, "lower(hostname) LIKE lower("+arg("%"+escapeLike(f.Hostname)+"%")+") ESCAPE '\\'")
	}
	nowArg := ""
	nowUnix := func() string {
		if nowArg == "" {
			nowArg = arg(now.Unix())
		}
		return nowArg
	}
	if f.UpdateStatus != "" {
		if !slices.Contains(AgentUpdateStatuses, f.UpdateStatus) {
			return nil, 0, fmt.Errorf("update status %q: %w", f.UpdateStatus, ErrInvalid)
		}
		where = append(where, updateStatusSQL(nowUnix())+" = "+arg(f.UpdateStatus))
	}
	if f.PackageType != "" {
		where = append(where, "EXISTS (SELECT 1 FROM agent_update_counts c WHERE c.agent_id = agents.id AND c.package_type = "+arg(f.PackageType)+")")
	}
	if f.HasCritical != nil {
		if *f.HasCritical {
			where = append(where, hasCriticalSQL)
		} else {
			where = append(where, "NOT "+hasCriticalSQL)
		}
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	if _, ok := SortableAgentFields[strings.TrimPrefix(f.Sort, "-")]; f.Sort != "" && !ok {
		return nil, 0, fmt.Errorf("sort %q: %w", f.Sort, ErrInvalid)
	}
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM agents"+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("counting agents: %w", err)
	}
	// The ORDER BY may bind more values: build it after the count, whose
	// query must not carry them.
	order, err := agentSortSQL(f.Sort, now, nowUnix, arg)
	if err != nil {
		return nil, 0, err
	}
	q := "SELECT " + agentCols + ", reboot_required, " + updateStatusSQL(nowUnix()) + " FROM agents" + cond + " ORDER BY " + order +
		" LIMIT " + arg(p.Limit) + " OFFSET " + arg(p.Offset)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing agents: %w", err)
	}
	defer rows.Close()
	out := []Agent{}
	for rows.Next() {
		var reboot bool
		var us string
		a, err := scanAgent(rows, now, &reboot, &us)
		if err != nil {
			return nil, 0, fmt.Errorf("reading agents: %w", err)
		}
		a.RebootRequired, a.UpdateStatus = reboot, us
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading agents: %w", err)
	}
	rows.Close()
	if err := s.fillUpdateCounts(ctx, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// ErrInvalid marks a filter or value the store cannot accept.
var ErrInvalid = errors.New("invalid value")

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// GetAgent reads one agent with its latest system inventory, its update
// status and counts and its scanners' states.
func (s *Store) GetAgent(ctx context.Context, id string, now time.Time) (Agent, error) {
	now = T(now)
	var info sql.NullString
	var infoAt sql.NullTime
	var interval int
	var reboot bool
	var us string
	a, err := scanAgent(s.r.QueryRowContext(ctx, "SELECT "+agentCols+", system_info, system_info_at, reboot_required, "+
		updateStatusSQL("$2")+", "+scanIntervalSQL+" FROM agents WHERE id = $1", id, now.Unix()),
		now, &info, &infoAt, &reboot, &us, &interval)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("reading agent: %w", err)
	}
	if info.Valid {
		a.SystemInfo = json.RawMessage(info.String)
	}
	a.SystemInfoAt = timePtr(infoAt)
	a.RebootRequired, a.UpdateStatus = reboot, us
	list := []Agent{a}
	if err := s.fillUpdateCounts(ctx, list); err != nil {
		return a, err
	}
	a = list[0]
	if a.Scans, err = s.agentScans(ctx, id, interval, now); err != nil {
		return a, err
	}
	return a, nil
}

// DeleteAgent removes an agent and, by cascade, its tokens, commands and updates.
func (s *Store) DeleteAgent(ctx context.Context, id string, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM agents WHERE id = $1", id)
		if err != nil {
			return fmt.Errorf("deleting agent: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return insertAudit(ctx, tx, a)
	})
}

// RebindAgent binds an agent to a new machine id (after a hardware change).
// ErrConflict when another agent already has that machine id.
func (s *Store) RebindAgent(ctx context.Context, id, machineID string, now time.Time, a *Audit) (Agent, error) {
	var ag Agent
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, "SELECT machine_id FROM agents WHERE id = $1", id).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reading agent: %w", err)
		}
		ag, err = scanAgent(tx.QueryRowContext(ctx, "UPDATE agents SET machine_id = $1 WHERE id = $2 RETURNING "+agentCols, machineID, id), T(now))
		if isUniqueViolation(err) {
			return fmt.Errorf("machine id is bound to another agent: %w", ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("rebinding agent: %w", err)
		}
		if a != nil {
			a.Details = map[string]any{"old_machine_id": old, "new_machine_id": machineID}
		}
		return insertAudit(ctx, tx, a)
	})
	return ag, err
}

// SaveSystemInfo stores the agent's latest inventory (already validated
// JSON). Its reboot_required, when present, becomes the agent's reboot flag
// (an install result can raise the flag; only the machine can clear it).
func (s *Store) SaveSystemInfo(ctx context.Context, id string, info []byte, now time.Time) error {
	var rb struct {
		RebootRequired *bool `json:"reboot_required"`
	}
	_ = json.Unmarshal(info, &rb)
	release, err := s.acquireWriter(ctx)
	if err != nil {
		return err
	}
	defer release()
	res, err := s.w.ExecContext(ctx, `UPDATE agents SET system_info = $1, system_info_at = $2,
		reboot_required = CASE WHEN $3 = 1 THEN $4 ELSE reboot_required END WHERE id = $5`,
		string(info), T(now), boolInt(rb.RebootRequired != nil), rb.RebootRequired != nil && *rb.RebootRequired, id)
	if err != nil {
		return fmt.Errorf("saving system info: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// AgentStatusCounts counts agents by derived status (for /metrics).
func (s *Store) AgentStatusCounts(ctx context.Context, now time.Time) (map[string]int, error) {
	now = T(now)
	out := map[string]int{StatusOnline: 0, StatusOffline: 0, StatusStale: 0}
	var online, offline, total int
	err := s.r.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(CASE WHEN offline_after > $1 THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN (offline_after IS NULL OR offline_after <= $1) AND last_seen_at > $2 THEN 1 ELSE 0 END), 0),
			COUNT(*)
		FROM agents`, now, now.Add(-StaleAfter)).Scan(&online, &offline, &total)
	if err != nil {
		return nil, fmt.Errorf("counting agents by status: %w", err)
	}
	out[StatusOnline], out[StatusOffline], out[StatusStale] = online, offline, total-online-offline
	return out, nil
}

// Counts of rows, for tests that prove a refused request changed nothing.
type Counts struct {
	Agents, RefreshTokens, RegistrationSeatsUsed, Audit, UserTokens, Users int
	// Updates, UpdateHistory, Scans and Commands count rows; ScanReports
	// sums the scans' last success times (Unix seconds), so a report that
	// refreshed a scan shows too.
	Updates, UpdateHistory, Scans, Commands int
	ScanReports                             int64
}

// CountAll reads Counts.
func (s *Store) CountAll(ctx context.Context) (Counts, error) {
	var c Counts
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM agents), (SELECT COUNT(*) FROM refresh_tokens),
		(SELECT COALESCE(SUM(seats_used), 0) FROM registration_tokens), (SELECT COUNT(*) FROM audit_log),
		(SELECT COUNT(*) FROM user_tokens), (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM updates),
		(SELECT COUNT(*) FROM update_history), (SELECT COUNT(*) FROM agent_scans), (SELECT COUNT(*) FROM commands),
		(SELECT COALESCE(SUM(last_success_unix), 0) FROM agent_scans)`).
		Scan(&c.Agents, &c.RefreshTokens, &c.RegistrationSeatsUsed, &c.Audit, &c.UserTokens, &c.Users,
			&c.Updates, &c.UpdateHistory, &c.Scans, &c.Commands, &c.ScanReports)
	return c, err
}

// Command is a signed instruction for one agent, stored signed.
type Command struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	Type      string    `json:"type"`
	Params    string    `json:"params"`
	Status    string    `json:"status"`
	KeyID     string    `json:"key_id"`
	Signature string    `json:"signature"`
	IssuedAt  int64     `json:"issued_at"`
	ExpiresAt int64     `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// claimCommands hands out the agent's due commands in one statement: the
// pending ones, and those handed out at least redeliver ago that the agent
// never acknowledged (the answer that carried them may never have arrived).
// Each is re-stamped sent_at = now, so concurrent claims see it as
// just sent and exactly one of them returns it.
func claimCommands(ctx context.Context, tx *sql.Tx, agentID string, now time.Time, redeliver time.Duration) ([]Command, error) {
	rows, err := tx.QueryContext(ctx, `UPDATE commands SET status = 'sent', sent_at = $1
		WHERE agent_id = $2 AND status IN ('pending', 'sent') AND expires_at > $3
			AND (status = 'pending' OR (acked_at IS NULL AND sent_at <= $4))
		RETURNING id, agent_id, type, params, status, key_id, signature, issued_at, expires_at, created_at`,
		now, agentID, now.Unix(), T(now.Add(-redeliver)))
	if err != nil {
		return nil, fmt.Errorf("claiming commands: %w", err)
	}
	defer rows.Close()
	out := []Command{}
	for rows.Next() {
		var c Command
		if err := rows.Scan(&c.ID, &c.AgentID, &c.Type, &c.Params, &c.Status, &c.KeyID, &c.Signature,
			&c.IssuedAt, &c.ExpiresAt, &c.CreatedAt); err != nil {
			return nil, fmt.Errorf("reading claimed commands: %w", err)
		}
		c.CreatedAt = c.CreatedAt.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claiming commands: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}
