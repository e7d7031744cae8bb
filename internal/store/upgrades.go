package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Agent upgrade statuses.
const (
	UpgradeInProgress = "in_progress"
	UpgradeSucceeded  = "succeeded"
	UpgradeFailed     = "failed"
	UpgradeCancelled  = "cancelled"
)

// Upgrade triggers.
const (
	TriggerManual = "manual"
	TriggerAuto   = "auto"
	TriggerRetry  = "retry"
)

// cmdUpdateAgent is protocol.CmdUpdateAgent (the store knows no protocol).
const cmdUpdateAgent = "update_agent"

// MaxFailureReason bounds the failure reason kept for an upgrade.
const MaxFailureReason = 2000

// AgentUpgrade is an agent's latest self-upgrade, as the agent detail shows
// it (its "upgrade" object).
type AgentUpgrade struct {
	AgentID       string  `json:"agent_id"`
	CommandID     *string `json:"command_id"`
	FromVersion   string  `json:"from_version"`
	TargetVersion string  `json:"target_version"`
	Rollback      bool    `json:"rollback"`
	// Status is in_progress, succeeded, failed or cancelled.
	Status        string `json:"status"`
	FailureReason string `json:"failure_reason,omitempty"`
	// AutoUpgradeBlocked: after a failed upgrade the server does not
	// upgrade the agent automatically until an admin retries it.
	AutoUpgradeBlocked bool       `json:"auto_upgrade_blocked"`
	Attempts           int        `json:"attempts"`
	Trigger            string     `json:"trigger"`
	RequestedBy        string     `json:"requested_by"`
	RequestedAt        time.Time  `json:"requested_at"`
	FinishedAt         *time.Time `json:"finished_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
}

const upgradeCols = `u.agent_id, u.command_id, u.from_version, u.target_version, u.rollback, u.status, u.failure_reason,
	u.auto_blocked, u.attempts, u.triggered_by, u.requested_by, u.requested_at, u.finished_at, u.updated_at`

func scanUpgrade(sc interface{ Scan(...any) error }, extra ...any) (AgentUpgrade, error) {
	var u AgentUpgrade
	var cmd sql.NullString
	var fin sql.NullTime
	err := sc.Scan(append([]any{&u.AgentID, &cmd, &u.FromVersion, &u.TargetVersion, &u.Rollback, &u.Status, &u.FailureReason,
		&u.AutoUpgradeBlocked, &u.Attempts, &u.Trigger, &u.RequestedBy, &u.RequestedAt, &fin, &u.UpdatedAt}, extra...)...)
	if cmd.Valid {
		u.CommandID = &cmd.String
	}
	u.RequestedAt, u.UpdatedAt, u.FinishedAt = u.RequestedAt.UTC(), u.UpdatedAt.UTC(), timePtr(fin)
	return u, err
}

// GetAgentUpgrade reads an agent's latest upgrade; nil when it never had one.
func (s *Store) GetAgentUpgrade(ctx context.Context, agentID string) (*AgentUpgrade, error) {
	u, err := scanUpgrade(s.r.QueryRowContext(ctx, "SELECT "+upgradeCols+" FROM agent_upgrades u WHERE u.agent_id = $1", agentID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the agent's upgrade: %w", err)
	}
	return &u, nil
}

// UpgradeTarget is an agent as the upgrade planner sees it.
type UpgradeTarget struct {
	ID           string
	OSType       string
	OSArch       string
	AgentVersion string
	Online       bool
	Upgrade      *AgentUpgrade // its latest upgrade, nil when none
}

// VersionGroup counts the agents of one platform reporting one version.
type VersionGroup struct {
	OSType, OSArch, AgentVersion string
	N                            int
}

// AgentVersionGroups lists the platform and version groups of the fleet
// (a few rows however many agents there are).
func (s *Store) AgentVersionGroups(ctx context.Context) ([]VersionGroup, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT os_type, os_arch, agent_version, COUNT(*) FROM agents
		GROUP BY os_type, os_arch, agent_version ORDER BY os_type, os_arch, agent_version`)
	if err != nil {
		return nil, fmt.Errorf("grouping agents by version: %w", err)
	}
	defer rows.Close()
	var out []VersionGroup
	for rows.Next() {
		var g VersionGroup
		if err := rows.Scan(&g.OSType, &g.OSArch, &g.AgentVersion, &g.N); err != nil {
			return nil, fmt.Errorf("grouping agents by version: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// UpgradeTargetFilter selects agents for an upgrade: by id, or by version
// group (platform and reported version), with optional exclusions.
type UpgradeTargetFilter struct {
	IDs   []string
	Group *VersionGroup
	// OnlineOnly keeps agents online at Now.
	OnlineOnly bool
	// ExcludeBlocked drops agents blocked from automatic upgrades;
	// ExcludeInProgress those with an upgrade under way; ExcludeTarget
	// those whose latest upgrade aimed at that version already (an upgrade
	// is never repeated automatically).
	ExcludeBlocked    bool
	ExcludeInProgress bool
	ExcludeTarget     string
	// ExcludePendingCommand drops agents with an update_agent command
	// pending or sent (one queued through /api/v1/commands, say).
	ExcludePendingCommand bool
	Limit                 int
	Now                   time.Time
}

// UpgradeTargets reads the agents the filter selects, oldest registration
// first. With IDs and no other filter, an id that is not an agent fails the
// call with *UnknownAgentsError.
func (s *Store) UpgradeTargets(ctx context.Context, f UpgradeTargetFilter) ([]UpgradeTarget, error) {
	now := T(f.Now)
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	nowArg := arg(now)
	if f.Group != nil {
		where = append(where, "a.os_type = "+arg(f.Group.OSType), "a.os_arch = "+arg(f.Group.OSArch), "a.agent_version = "+arg(f.Group.AgentVersion))
	}
	if f.OnlineOnly {
		where = append(where, "a.offline_after > "+nowArg)
	}
	if f.ExcludeBlocked {
		where = append(where, "(u.agent_id IS NULL OR u.auto_blocked = "+arg(false)+")")
	}
	if f.ExcludeInProgress {
		where = append(where, "(u.agent_id IS NULL OR u.status <> 'in_progress')")
	}
	if f.ExcludePendingCommand {
		where = append(where, "NOT EXISTS (SELECT 1 FROM commands c WHERE c.agent_id = a.id AND c.type = "+arg(cmdUpdateAgent)+
			" AND c.status IN ('pending', 'sent'))")
	}
	if f.ExcludeTarget != "" {
		where = append(where, "(u.agent_id IS NULL OR u.target_version <> "+arg(f.ExcludeTarget)+")")
	}
	base := `SELECT a.id, a.os_type, a.os_arch, a.agent_version, CASE WHEN a.offline_after > ` + nowArg + ` THEN 1 ELSE 0 END, ` +
		upgradeCols + ` FROM agents a LEFT JOIN agent_upgrades u ON u.agent_id = a.id`
	var out []UpgradeTarget
	read := func(q string, qargs []any) error {
		rows, err := s.r.QueryContext(ctx, q, qargs...)
		if err != nil {
			return fmt.Errorf("reading upgrade targets: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanUpgradeTarget(rows)
			if err != nil {
				return fmt.Errorf("reading upgrade targets: %w", err)
			}
			out = append(out, t)
		}
		return rows.Err()
	}
	if len(f.IDs) == 0 {
		q := base
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		q += " ORDER BY a.registered_at, a.id"
		if f.Limit > 0 {
			q += " LIMIT " + arg(f.Limit)
		}
		return out, read(q, args)
	}
	want := map[string]bool{}
	for start := 0; start < len(f.IDs); start += chunk {
		part := f.IDs[start:min(start+chunk, len(f.IDs))]
		pargs := append([]any(nil), args...)
		ph := make([]string, len(part))
		for i, id := range part {
			pargs = append(pargs, id)
			ph[i] = fmt.Sprintf("$%d", len(pargs))
			want[id] = true
		}
		w := append(append([]string(nil), where...), "a.id IN ("+strings.Join(ph, ",")+")")
		if err := read(base+" WHERE "+strings.Join(w, " AND ")+" ORDER BY a.registered_at, a.id", pargs); err != nil {
			return nil, err
		}
	}
	if len(where) == 0 {
		for _, t := range out {
			delete(want, t.ID)
		}
		if len(want) > 0 {
			missing := make([]string, 0, len(want))
			for id := range want {
				missing = append(missing, id)
			}
			return nil, &UnknownAgentsError{IDs: missing}
		}
	}
	return out, nil
}

func scanUpgradeTarget(rows *sql.Rows) (UpgradeTarget, error) {
	var t UpgradeTarget
	var online int
	var uid, cmd, from, target, status, reason, trig, by sql.NullString
	var rollback, blocked sql.NullBool
	var attempts sql.NullInt64
	var req, fin, upd sql.NullTime
	if err := rows.Scan(&t.ID, &t.OSType, &t.OSArch, &t.AgentVersion, &online, &uid, &cmd, &from, &target, &rollback, &status, &reason,
		&blocked, &attempts, &trig, &by, &req, &fin, &upd); err != nil {
		return t, err
	}
	t.Online = online == 1
	if uid.Valid {
		u := &AgentUpgrade{AgentID: uid.String, FromVersion: from.String, TargetVersion: target.String, Rollback: rollback.Bool,
			Status: status.String, FailureReason: reason.String, AutoUpgradeBlocked: blocked.Bool, Attempts: int(attempts.Int64),
			Trigger: trig.String, RequestedBy: by.String, RequestedAt: req.Time.UTC(), FinishedAt: timePtr(fin), UpdatedAt: upd.Time.UTC()}
		if cmd.Valid {
			u.CommandID = &cmd.String
		}
		t.Upgrade = u
	}
	return t, nil
}

// QueuedUpgrade is one upgrade to store: its signed update_agent command
// and what it aims at.
type QueuedUpgrade struct {
	Command     CommandRecord
	FromVersion string
	Target      string
	Rollback    bool
	Trigger     string
}

// QueueUpgrades stores signed update_agent commands and makes each the
// agent's latest upgrade (in progress, not blocked, one more attempt), in
// one transaction with the audit row. An agent that already has a pending
// update_agent command (queued through /api/v1/commands) keeps it: its id
// is returned in pending and nothing is written for it.
func (s *Store) QueueUpgrades(ctx context.Context, ups []QueuedUpgrade, now time.Time, a *Audit) (queued []CommandRecord, pending []string, err error) {
	if len(ups) == 0 {
		return nil, nil, nil
	}
	now = T(now)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		queued, pending = nil, nil
		cmds := make([]CommandRecord, len(ups))
		for i, u := range ups {
			cmds[i] = u.Command
		}
		if err := checkAgentsExist(ctx, tx, cmds); err != nil {
			return err
		}
		inserted := map[string]bool{}
		for start := 0; start < len(cmds); start += chunk {
			part := cmds[start:min(start+chunk, len(cmds))]
			var sb strings.Builder
			args := make([]any, 0, len(part)*10)
			sb.WriteString("INSERT INTO commands (id, agent_id, type, params, status, key_id, signature, issued_at, expires_at, created_by, created_at) VALUES ")
			for i, c := range part {
				if i > 0 {
					sb.WriteByte(',')
				}
				n := len(args)
				fmt.Fprintf(&sb, "($%d,$%d,$%d,$%d,'pending',$%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10)
				args = append(args, c.ID, c.AgentID, c.Type, c.Params, c.KeyID, c.Signature, c.IssuedAt, c.ExpiresAt, c.CreatedBy, T(c.CreatedAt))
			}
			sb.WriteString(" ON CONFLICT (agent_id, type) WHERE status = 'pending' DO NOTHING RETURNING id")
			rows, err := tx.QueryContext(ctx, sb.String(), args...)
			if err != nil {
				return fmt.Errorf("storing update_agent commands: %w", err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return fmt.Errorf("storing update_agent commands: %w", err)
				}
				inserted[id] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("storing update_agent commands: %w", err)
			}
		}
		for _, u := range ups {
			c := u.Command
			if !inserted[c.ID] {
				pending = append(pending, c.AgentID)
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO agent_upgrades (agent_id, command_id, from_version, target_version, rollback, status,
					failure_reason, auto_blocked, attempts, triggered_by, requested_by, requested_at, finished_at, updated_at)
				VALUES ($1,$2,$3,$4,$5,'in_progress','',$6,1,$7,$8,$9,NULL,$9)
				ON CONFLICT (agent_id) DO UPDATE SET command_id = excluded.command_id, from_version = excluded.from_version,
					target_version = excluded.target_version, rollback = excluded.rollback, status = 'in_progress', failure_reason = '',
					auto_blocked = excluded.auto_blocked, attempts = agent_upgrades.attempts + 1, triggered_by = excluded.triggered_by,
					requested_by = excluded.requested_by, requested_at = excluded.requested_at, finished_at = NULL, updated_at = excluded.updated_at`,
				c.AgentID, c.ID, u.FromVersion, u.Target, u.Rollback, false, u.Trigger, c.CreatedBy, now); err != nil {
				return fmt.Errorf("recording the agent's upgrade: %w", err)
			}
			c.Status, c.CreatedAt = "pending", T(c.CreatedAt)
			queued = append(queued, c)
		}
		if err := s.notifyAgents(ctx, tx, queued); err != nil {
			return err
		}
		if a != nil {
			if a.Details == nil {
				a.Details = map[string]any{}
			}
			a.Details["queued"], a.Details["already_pending"] = len(queued), len(pending)
		}
		return insertAudit(ctx, tx, a)
	})
	if err != nil {
		return nil, nil, err
	}
	return queued, pending, nil
}

// CountUpgradesSince counts the agents whose latest upgrade was triggered
// by trigger at or after since (the automatic job's rate limit).
func (s *Store) CountUpgradesSince(ctx context.Context, trigger string, since time.Time) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM agent_upgrades WHERE triggered_by = $1 AND requested_at >= $2", trigger, T(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting recent upgrades: %w", err)
	}
	return n, nil
}

// storedCommandResult is the part of a stored result the settlement reads.
type storedCommandResult struct {
	Output  string          `json:"output"`
	Details json.RawMessage `json:"details"`
}

// SettleUpgrades brings upgrades in line with their update_agent commands:
// an upgrade in progress whose command finished becomes succeeded, failed
// (with the agent's reason, and blocked from automatic upgrades) or
// cancelled; one whose command timed out or expired fails. With
// commandIDs, the upgrades of exactly those commands are settled whatever
// their state (a late result after a time-out counts). It returns the
// upgrades it changed.
func (s *Store) SettleUpgrades(ctx context.Context, now time.Time, commandIDs ...string) ([]AgentUpgrade, error) {
	now = T(now)
	var changed []AgentUpgrade
	err := s.tx(ctx, func(tx *sql.Tx) error {
		changed = nil
		q := "SELECT " + upgradeCols + ", c.status, c.result FROM agent_upgrades u LEFT JOIN commands c ON c.id = u.command_id WHERE "
		var args []any
		if len(commandIDs) == 0 {
			q += "u.status = 'in_progress' AND (c.id IS NULL OR c.status NOT IN ('pending', 'sent'))"
		} else {
			ph := make([]string, len(commandIDs))
			for i, id := range commandIDs {
				args = append(args, id)
				ph[i] = fmt.Sprintf("$%d", i+1)
			}
			q += "u.command_id IN (" + strings.Join(ph, ",") + ") AND (c.id IS NULL OR c.status NOT IN ('pending', 'sent'))"
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("reading upgrades to settle: %w", err)
		}
		type settle struct {
			u      AgentUpgrade
			status sql.NullString
			result sql.NullString
		}
		var todo []settle
		for rows.Next() {
			var st settle
			u, err := scanUpgrade(rows, &st.status, &st.result)
			if err != nil {
				rows.Close()
				return fmt.Errorf("reading upgrades to settle: %w", err)
			}
			st.u = u
			todo = append(todo, st)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading upgrades to settle: %w", err)
		}
		for _, st := range todo {
			u := st.u
			status, reason, blocked := upgradeOutcome(st.status, st.result)
			if u.Status == status && u.FailureReason == reason && u.AutoUpgradeBlocked == blocked {
				continue
			}
			u.Status, u.FailureReason, u.AutoUpgradeBlocked, u.UpdatedAt = status, reason, blocked, now
			u.FinishedAt = &now
			if _, err := tx.ExecContext(ctx, `UPDATE agent_upgrades SET status = $1, failure_reason = $2, auto_blocked = $3,
				finished_at = $4, updated_at = $4 WHERE agent_id = $5`, status, reason, blocked, now, u.AgentID); err != nil {
				return fmt.Errorf("settling an upgrade: %w", err)
			}
			changed = append(changed, u)
		}
		return nil
	})
	return changed, err
}

// upgradeOutcome maps a finished update_agent command to its upgrade's
// status, failure reason and block.
func upgradeOutcome(cmdStatus, result sql.NullString) (status, reason string, blocked bool) {
	var res storedCommandResult
	if result.Valid {
		_ = json.Unmarshal([]byte(result.String), &res)
	}
	switch cmdStatus.String {
	case "succeeded":
		return UpgradeSucceeded, "", false
	case "cancelled":
		return UpgradeCancelled, "", false
	case "failed":
		reason = strings.TrimSpace(res.Output)
		if reason == "" {
			reason = "the agent reported the update_agent command failed without a reason"
		}
	case "timed_out":
		reason = "the agent did not report the update_agent command's outcome in time (timed out)"
	case "expired":
		reason = "the update_agent command expired before the agent fetched it"
	default:
		reason = "the update_agent command of this upgrade no longer exists"
	}
	if len(reason) > MaxFailureReason {
		reason = reason[:MaxFailureReason]
		for len(reason) > 0 && !utf8RuneStart(reason[len(reason)-1]) {
			reason = reason[:len(reason)-1]
		}
		reason += "…"
	}
	return UpgradeFailed, reason, true
}

func utf8RuneStart(b byte) bool { return b < 0x80 || b >= 0xC0 }

// ClearUpgradeBlock lets the server upgrade the agent automatically again
// and returns its upgrade (ErrNotFound: the agent never had one).
func (s *Store) ClearUpgradeBlock(ctx context.Context, agentID string, now time.Time, a *Audit) (*AgentUpgrade, error) {
	var out *AgentUpgrade
	err := s.tx(ctx, func(tx *sql.Tx) error {
		u, err := scanUpgrade(tx.QueryRowContext(ctx, "SELECT "+upgradeCols+" FROM agent_upgrades u WHERE u.agent_id = $1", agentID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reading the agent's upgrade: %w", err)
		}
		if u.AutoUpgradeBlocked {
			if _, err := tx.ExecContext(ctx, "UPDATE agent_upgrades SET auto_blocked = $1, updated_at = $2 WHERE agent_id = $3",
				false, T(now), agentID); err != nil {
				return fmt.Errorf("clearing the upgrade block: %w", err)
			}
			u.AutoUpgradeBlocked, u.UpdatedAt = false, T(now)
			if a != nil {
				a.Details = map[string]any{"failure_reason": u.FailureReason, "target_version": u.TargetVersion}
			}
			if err := insertAudit(ctx, tx, a); err != nil {
				return err
			}
		}
		out = &u
		return nil
	})
	return out, err
}
