package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Admin actions on updates.
const (
	ActionApprove = "approve"
	ActionReject  = "reject"
	ActionIgnore  = "ignore"
	ActionConfirm = "confirm"
)

// actionRules: for each action, the status it sets and the statuses it
// accepts (the target status itself is accepted and changes nothing).
var actionRules = map[string]struct {
	to   string
	from []string
}{
	ActionApprove: {UpdateApproved, []string{UpdatePending, UpdateFailed, UpdateRejected, UpdateIgnored}},
	ActionReject:  {UpdateRejected, []string{UpdatePending, UpdateApproved, UpdateFailed, UpdateNeedsConfirmation, UpdateIgnored}},
	ActionIgnore:  {UpdateIgnored, []string{UpdatePending, UpdateApproved, UpdateFailed, UpdateNeedsConfirmation, UpdateRejected}},
	ActionConfirm: {UpdateApproved, []string{UpdateNeedsConfirmation}},
}

// UpdateActionParams is one bulk action on updates.
type UpdateActionParams struct {
	Action string
	IDs    []string
	// DryRun (approve only): queue install_updates as a dry run first.
	DryRun bool
	Actor  string
	Sign   CommandSigner
	Audit  *Audit
	Now    time.Time
}

// UpdateActionResult says what a bulk action did.
type UpdateActionResult struct {
	// Changed updates changed status; Unchanged already had the target status.
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	// Commands are the commands queued (one per agent and type at most).
	Commands []CommandRecord `json:"commands"`
}

type actionRow struct {
	id, agentID, status, cmdID, cmdStatus, cmdType string
}

// ActOnUpdates applies an admin action to updates, all in one transaction
// with its audit row:
//   - approve: pending, failed, rejected or ignored → approved, and one
//     install_updates command per agent (a dry run when DryRun) carrying all
//     of that agent's approved updates not already in flight. An agent's
//     pending install_updates is replaced (cancelled, and a new one queued
//     covering its updates too), since only one may wait per agent.
//   - reject, ignore: → rejected / ignored; a pending command that carried
//     the update is replaced without it.
//   - confirm: needs_confirmation → approved, and confirm_dependencies
//     queued per agent.
//
// Unknown ids fail the whole request (UnknownUpdatesError), and so does an
// update whose status does not allow the action (UpdateStateError).
func (s *Store) ActOnUpdates(ctx context.Context, p UpdateActionParams) (UpdateActionResult, error) {
	rule, ok := actionRules[p.Action]
	if !ok {
		return UpdateActionResult{}, fmt.Errorf("action %q: %w", p.Action, ErrInvalid)
	}
	now := T(p.Now)
	ids := slices.Clone(p.IDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var res UpdateActionResult
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res = UpdateActionResult{Commands: []CommandRecord{}}
		owners := map[string]string{}
		if err := inChunks(ids, chunk, func(part []string) error {
			rows, err := tx.QueryContext(ctx, "SELECT id, agent_id FROM updates WHERE id IN ("+params(1, len(part))+")", anys(part)...)
			if err != nil {
				return fmt.Errorf("reading updates: %w", err)
			}
			defer rows.Close()
			for rows.Next() {
				var id, agent string
				if err := rows.Scan(&id, &agent); err != nil {
					return fmt.Errorf("reading updates: %w", err)
				}
				owners[id] = agent
			}
			return rows.Err()
		}); err != nil {
			return err
		}
		var missing []string
		agentSet := map[string]bool{}
		for _, id := range ids {
			if a, ok := owners[id]; ok {
				agentSet[a] = true
			} else {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return &UnknownUpdatesError{IDs: missing}
		}
		agents := sortedKeys(agentSet)
		if _, err := s.lockAgents(ctx, tx, agents); err != nil {
			return err
		}
		// Read again under the lock: statuses may have moved meanwhile.
		var rows []actionRow
		if err := inChunks(ids, chunk, func(part []string) error {
			rs, err := tx.QueryContext(ctx, `SELECT u.id, u.agent_id, u.status, COALESCE(u.command_id, ''), COALESCE(c.status, ''), COALESCE(c.type, '')
				FROM updates u LEFT JOIN commands c ON c.id = u.command_id WHERE u.id IN (`+params(1, len(part))+")", anys(part)...)
			if err != nil {
				return fmt.Errorf("reading updates: %w", err)
			}
			defer rs.Close()
			for rs.Next() {
				var r actionRow
				if err := rs.Scan(&r.id, &r.agentID, &r.status, &r.cmdID, &r.cmdStatus, &r.cmdType); err != nil {
					return fmt.Errorf("reading updates: %w", err)
				}
				rows = append(rows, r)
			}
			return rs.Err()
		}); err != nil {
			return err
		}
		if len(rows) != len(ids) {
			return &UnknownUpdatesError{IDs: missingIDs(ids, rows)}
		}
		var refused []UpdateState
		var change []actionRow
		add := map[string][]string{}     // agent → updates to put in its new command
		requeue := map[string][]string{} // agent → types of pending commands to rebuild
		changedAgents := map[string]bool{}
		for _, r := range rows {
			switch {
			case r.status == rule.to && p.Action != ActionConfirm:
				res.Unchanged++
				// An approved update joins the new command unless it is in
				// flight or waits in a confirm_dependencies command.
				if p.Action == ActionApprove && r.cmdStatus != "sent" && (r.cmdStatus != "pending" || r.cmdType == cmdInstallUpdates) {
					add[r.agentID] = append(add[r.agentID], r.id)
				}
			case slices.Contains(rule.from, r.status):
				change = append(change, r)
				changedAgents[r.agentID] = true
				switch p.Action {
				case ActionApprove, ActionConfirm:
					add[r.agentID] = append(add[r.agentID], r.id)
				default:
					if r.status == UpdateApproved && r.cmdStatus == "pending" {
						requeue[r.agentID] = append(requeue[r.agentID], r.cmdType)
					}
				}
			default:
				refused = append(refused, UpdateState{ID: r.id, Status: r.status})
			}
		}
		if len(refused) > 0 {
			sort.Slice(refused, func(i, j int) bool { return refused[i].ID < refused[j].ID })
			return &UpdateStateError{Action: p.Action, Items: refused}
		}
		res.Changed = len(change)
		changeIDs := make([]string, len(change))
		hist := make([]historyRow, len(change))
		note := map[string]string{ActionApprove: "approved", ActionReject: "rejected", ActionIgnore: "ignored",
			ActionConfirm: "extra packages confirmed"}[p.Action]
		if p.Action == ActionApprove && p.DryRun {
			note = "approved, dry run first"
		}
		for i, r := range change {
			changeIDs[i] = r.id
			hist[i] = historyRow{updateID: r.id, from: r.status, to: rule.to, actor: p.Actor, note: note, at: now}
		}
		set := "status = $1, status_changed_at = $2, updated_at = $2"
		switch p.Action {
		case ActionApprove:
			set += ", command_id = NULL, extras = NULL, status_message = ''"
		case ActionReject, ActionIgnore:
			set += ", status_message = ''"
		}
		if err := inChunks(changeIDs, chunk, func(part []string) error {
			_, err := tx.ExecContext(ctx, "UPDATE updates SET "+set+" WHERE id IN ("+params(3, len(part))+")",
				append([]any{rule.to, now}, anys(part)...)...)
			if err != nil {
				return fmt.Errorf("updating updates: %w", err)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := s.insertHistory(ctx, tx, hist); err != nil {
			return err
		}
		typ := cmdInstallUpdates
		if p.Action == ActionConfirm {
			typ = cmdConfirmDependencies
		}
		for _, agent := range sortedKeys(add) {
			c, err := s.requeue(ctx, tx, agent, typ, add[agent], p.DryRun, p.Sign, now)
			if err != nil {
				return err
			}
			if c != nil {
				res.Commands = append(res.Commands, *c)
			}
		}
		for _, agent := range sortedKeys(requeue) {
			types := requeue[agent]
			slices.Sort(types)
			for _, t := range slices.Compact(types) {
				c, err := s.requeue(ctx, tx, agent, t, nil, false, p.Sign, now)
				if err != nil {
					return err
				}
				if c != nil {
					res.Commands = append(res.Commands, *c)
				}
			}
		}
		if err := s.refreshUpdateCounts(ctx, tx, sortedKeys(changedAgents)); err != nil {
			return err
		}
		if p.Audit != nil {
			shown := ids
			if len(shown) > 100 {
				shown = shown[:100]
			}
			p.Audit.Details = map[string]any{"updates": len(ids), "changed": res.Changed, "unchanged": res.Unchanged,
				"agents": len(agents), "commands": len(res.Commands), "update_ids": shown}
			if p.Action == ActionApprove {
				p.Audit.Details["dry_run"] = p.DryRun
			}
		}
		return insertAudit(ctx, tx, p.Audit)
	})
	return res, err
}

func missingIDs(ids []string, rows []actionRow) []string {
	have := map[string]bool{}
	for _, r := range rows {
		have[r.id] = true
	}
	var out []string
	for _, id := range ids {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// requeuePending rebuilds every pending install command of the agent after
// its approved updates changed under it (a new version, a resolution).
func (s *Store) requeuePending(ctx context.Context, tx *sql.Tx, agentID string, sign CommandSigner, now time.Time) ([]CommandRecord, error) {
	var out []CommandRecord
	for _, typ := range []string{cmdInstallUpdates, cmdConfirmDependencies} {
		c, err := s.requeue(ctx, tx, agentID, typ, nil, false, sign, now)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, *c)
		}
	}
	return out, nil
}

// requeue makes the agent's pending command of type typ carry exactly its
// approved updates waiting for that type: those the pending command carries,
// the ids in add, and (install_updates only) approved updates carried by no
// command. When that set or the dry-run flag differs from the pending
// command's, the pending command is cancelled and, unless the set is empty,
// a new signed one is queued; the updates point at it. A dry run is kept
// once asked for: merging a real install into a pending dry run stays a dry
// run, so a preview an admin asked for is never skipped. It returns the new
// command, or nil when nothing was queued.
func (s *Store) requeue(ctx context.Context, tx *sql.Tx, agentID, typ string, add []string, dryHint bool, sign CommandSigner, now time.Time) (*CommandRecord, error) {
	var pendingID, pendingParams string
	err := tx.QueryRowContext(ctx, "SELECT id, params FROM commands WHERE agent_id = $1 AND type = $2 AND status = 'pending'", agentID, typ).
		Scan(&pendingID, &pendingParams)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading the pending %s command: %w", typ, err)
	}
	var pend storedInstallParams
	if pendingID != "" {
		_ = json.Unmarshal([]byte(pendingParams), &pend)
	}
	members := map[string]InstallItem{}
	read := func(q string, args ...any) error {
		rows, err := tx.QueryContext(ctx, "SELECT id, package_type, package_name, available_version FROM updates WHERE agent_id = $1 AND status = 'approved' AND "+q,
			append([]any{agentID}, args...)...)
		if err != nil {
			return fmt.Errorf("reading approved updates: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var it InstallItem
			if err := rows.Scan(&it.UpdateID, &it.PackageType, &it.PackageName, &it.Version); err != nil {
				return fmt.Errorf("reading approved updates: %w", err)
			}
			members[it.UpdateID] = it
		}
		return rows.Err()
	}
	if pendingID != "" {
		if err := read("command_id = $2", pendingID); err != nil {
			return nil, err
		}
	}
	if err := inChunks(add, chunk, func(part []string) error {
		return read("id IN ("+params(2, len(part))+")", anys(part)...)
	}); err != nil {
		return nil, err
	}
	if typ == cmdInstallUpdates {
		if err := read("command_id IS NULL"); err != nil {
			return nil, err
		}
	}
	dry := typ == cmdInstallUpdates && (dryHint || pend.DryRun)
	ids := sortedKeys(members)
	if pendingID != "" && dry == pend.DryRun && slices.Equal(ids, sortedCopy(pend.ids())) {
		// The pending command already says this; make sure each update points at it.
		return nil, inChunks(ids, chunk, func(part []string) error {
			_, err := tx.ExecContext(ctx, "UPDATE updates SET command_id = $1 WHERE id IN ("+params(2, len(part))+")",
				append([]any{pendingID}, anys(part)...)...)
			return err
		})
	}
	if pendingID != "" {
		if _, err := tx.ExecContext(ctx, "UPDATE commands SET status = 'cancelled', finished_at = $1 WHERE id = $2 AND status = 'pending'",
			now, pendingID); err != nil {
			return nil, fmt.Errorf("replacing the pending %s command: %w", typ, err)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if sign == nil {
		return nil, fmt.Errorf("queueing %s: no command signer", typ)
	}
	items := make([]InstallItem, 0, len(members))
	for _, id := range ids {
		items = append(items, members[id])
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].PackageType != items[j].PackageType {
			return items[i].PackageType < items[j].PackageType
		}
		return items[i].PackageName < items[j].PackageName
	})
	c, err := sign(agentID, typ, items, dry)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", typ, err)
	}
	c.Status = "pending"
	c.CreatedAt = T(c.CreatedAt)
	if _, err := tx.ExecContext(ctx, `INSERT INTO commands (id, agent_id, type, params, status, key_id, signature, issued_at, expires_at,
			created_by, created_at) VALUES ($1,$2,$3,$4,'pending',$5,$6,$7,$8,$9,$10)`,
		c.ID, c.AgentID, c.Type, c.Params, c.KeyID, c.Signature, c.IssuedAt, c.ExpiresAt, c.CreatedBy, c.CreatedAt); err != nil {
		return nil, fmt.Errorf("storing %s: %w", typ, err)
	}
	if err := inChunks(ids, chunk, func(part []string) error {
		_, err := tx.ExecContext(ctx, "UPDATE updates SET command_id = $1 WHERE id IN ("+params(2, len(part))+")",
			append([]any{c.ID}, anys(part)...)...)
		if err != nil {
			return fmt.Errorf("attaching updates to %s: %w", typ, err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := s.notifyAgents(ctx, tx, []CommandRecord{c}); err != nil {
		return nil, err
	}
	return &c, nil
}

func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// InstallOutcome is the details object of an install_updates or
// confirm_dependencies result, already cleaned by the caller.
type InstallOutcome struct {
	DryRun bool
	// Extras is a JSON array of the extra package changes a dry run found
	// (nil or empty when none).
	Extras         json.RawMessage
	HasExtras      bool
	Results        []InstallItemOutcome
	RebootRequired bool
}

// InstallItemOutcome is the result for one update.
type InstallItemOutcome struct {
	UpdateID         string
	Status           string // "installed" or "failed"
	InstalledVersion string
	Message          string
}

// ResultParams is one command result.
type ResultParams struct {
	AgentID, CommandID, Status string
	Result                     []byte
	// Output is the command's output, for the message of updates that fail
	// without a per-update result.
	Output string
	// Install is the parsed details of an install result (nil when the
	// details were absent or not that shape).
	Install *InstallOutcome
	// Sign queues the real install after a clean dry run.
	Sign CommandSigner
	Now  time.Time
}

// SaveResult records an agent's result for one of its commands. It is
// idempotent: the same status again changes nothing and is not an error. A
// late result still lands on a timed-out command; a different result for a
// finished command is ErrCommandFinished.
func (s *Store) SaveResult(ctx context.Context, agentID, commandID, status string, result []byte, now time.Time) (CommandRecord, error) {
	c, _, err := s.SaveCommandResult(ctx, ResultParams{AgentID: agentID, CommandID: commandID, Status: status, Result: result, Now: now})
	return c, err
}

// SaveCommandResult is SaveResult that also applies the result of an
// install_updates or confirm_dependencies command to its updates, in the
// same transaction. It returns the commands that queued (the real install
// after a clean dry run).
func (s *Store) SaveCommandResult(ctx context.Context, p ResultParams) (CommandRecord, []CommandRecord, error) {
	var c CommandRecord
	var queued []CommandRecord
	now := T(p.Now)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		queued = nil
		var err error
		c, err = scanCommandRecord(tx.QueryRowContext(ctx, "SELECT "+commandCols+" FROM commands WHERE id = $1 AND agent_id = $2", p.CommandID, p.AgentID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reading command: %w", err)
		}
		switch c.Status {
		case p.Status:
			return nil // the same result again
		case "sent", "timed_out":
		default:
			return ErrCommandFinished
		}
		if _, err := tx.ExecContext(ctx, "UPDATE commands SET status = $1, finished_at = $2, result = $3 WHERE id = $4",
			p.Status, now, string(p.Result), p.CommandID); err != nil {
			return fmt.Errorf("saving result: %w", err)
		}
		c.Status, c.Result = p.Status, json.RawMessage(p.Result)
		c.FinishedAt = &now
		if c.Type == cmdInstallUpdates || c.Type == cmdConfirmDependencies {
			queued, err = s.applyInstallResult(ctx, tx, c, p, now)
			return err
		}
		return nil
	})
	return c, queued, err
}

type installRow struct {
	id, status, packageType string
}

// applyInstallResult moves the updates a finished install command carried:
//   - a dry run (install_updates with dry_run): updates the details report
//     failed are failed; with extras the others need confirmation (the
//     extras are kept on each); without, they stay approved and the real
//     install is queued at once. A failed dry run without results fails them.
//   - a real install (or confirm_dependencies): each update is installed or
//     failed as its result says; one without a result is installed when the
//     command succeeded and failed otherwise. The agent's reboot flag is
//     raised when the details say so, and the report hashes of the package
//     types touched are cleared so the agent's next report is a full one.
func (s *Store) applyInstallResult(ctx context.Context, tx *sql.Tx, c CommandRecord, p ResultParams, now time.Time) ([]CommandRecord, error) {
	var ip storedInstallParams
	_ = json.Unmarshal([]byte(c.Params), &ip)
	dryRun := c.Type == cmdInstallUpdates && ip.DryRun
	rows, err := tx.QueryContext(ctx, "SELECT id, status, package_type FROM updates WHERE command_id = $1 AND status NOT IN ('installed', 'resolved')", c.ID)
	if err != nil {
		return nil, fmt.Errorf("reading the command's updates: %w", err)
	}
	var ups []installRow
	for rows.Next() {
		var r installRow
		if err := rows.Scan(&r.id, &r.status, &r.packageType); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the command's updates: %w", err)
		}
		ups = append(ups, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the command's updates: %w", err)
	}
	if len(ups) == 0 {
		return nil, s.raiseReboot(ctx, tx, c.AgentID, p.Install)
	}
	byID := map[string]InstallItemOutcome{}
	if p.Install != nil {
		for _, r := range p.Install.Results {
			byID[r.UpdateID] = r
		}
	}
	failMsg := tail(p.Output, 4096)
	if failMsg == "" {
		failMsg = "the command failed without a message"
	}
	var hist []historyRow
	sent := now
	if c.SentAt != nil {
		sent = *c.SentAt
	}
	set := func(r installRow, to, msg, version string, extras json.RawMessage) error {
		var ex any
		if extras != nil {
			ex = string(extras)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE updates SET status = $1, status_message = $2, installed_version = $3,
				extras = CASE WHEN $4 = 1 THEN $5 ELSE extras END, status_changed_at = $6, updated_at = $6 WHERE id = $7`,
			to, truncate(msg, 4096), version, boolInt(extras != nil), ex, now, r.id); err != nil {
			return fmt.Errorf("updating update %s: %w", r.id, err)
		}
		return nil
	}
	actor := "agent"
	var detach []string
	if dryRun {
		extras := p.Install != nil && p.Install.HasExtras
		for _, r := range ups {
			res, has := byID[r.id]
			switch {
			case r.status != UpdateApproved && !(has && res.Status == UpdateInstalled):
				// Rejected or failed meanwhile: a dry run changes nothing there.
			case has && res.Status != UpdateInstalled:
				hist = append(hist, historyRow{r.id, r.status, UpdateFailed, actor, "dry run failed: " + res.Message, now})
				if err := set(r, UpdateFailed, res.Message, "", nil); err != nil {
					return nil, err
				}
			case p.Status != "succeeded" && !extras:
				hist = append(hist, historyRow{r.id, r.status, UpdateFailed, actor, "dry run failed", now})
				if err := set(r, UpdateFailed, failMsg, "", nil); err != nil {
					return nil, err
				}
			case extras:
				hist = append(hist, historyRow{r.id, r.status, UpdateNeedsConfirmation, actor, "dry run found extra packages to confirm", now})
				if err := set(r, UpdateNeedsConfirmation, res.Message, "", p.Install.Extras); err != nil {
					return nil, err
				}
			default:
				hist = append(hist, historyRow{r.id, r.status, UpdateApproved, actor, "dry run found no extra packages; install queued", now})
				detach = append(detach, r.id)
			}
		}
	} else {
		for _, r := range ups {
			res, has := byID[r.id]
			to, msg, version := UpdateFailed, failMsg, ""
			switch {
			case has && res.Status == UpdateInstalled:
				to, msg, version = UpdateInstalled, res.Message, res.InstalledVersion
			case has:
				msg = res.Message
				if msg == "" {
					msg = "the agent reported the install failed"
				}
			case p.Status == "succeeded":
				to, msg = UpdateInstalled, "the command succeeded without a result for this update"
			}
			if r.status == UpdateApproved {
				hist = append(hist, historyRow{r.id, UpdateApproved, UpdateInstalling, actor, "delivered in " + c.Type + " " + c.ID, sent})
				r.status = UpdateInstalling
			}
			hist = append(hist, historyRow{r.id, r.status, to, actor, msg, now})
			if err := set(r, to, msg, version, nil); err != nil {
				return nil, err
			}
		}
		types := map[string]bool{}
		for _, r := range ups {
			types[r.packageType] = true
		}
		tl := sortedKeys(types)
		if _, err := tx.ExecContext(ctx, "UPDATE agent_scans SET report_hash = '' WHERE agent_id = $1 AND scanner IN ("+params(2, len(tl))+")",
			append([]any{c.AgentID}, anys(tl)...)...); err != nil {
			return nil, fmt.Errorf("clearing report hashes: %w", err)
		}
	}
	if err := s.insertHistory(ctx, tx, hist); err != nil {
		return nil, err
	}
	if err := s.raiseReboot(ctx, tx, c.AgentID, p.Install); err != nil {
		return nil, err
	}
	var queued []CommandRecord
	if len(detach) > 0 {
		if err := inChunks(detach, chunk, func(part []string) error {
			_, err := tx.ExecContext(ctx, "UPDATE updates SET command_id = NULL, status_message = '', updated_at = $1 WHERE id IN ("+params(2, len(part))+")",
				append([]any{now}, anys(part)...)...)
			return err
		}); err != nil {
			return nil, fmt.Errorf("detaching updates: %w", err)
		}
		nc, err := s.requeue(ctx, tx, c.AgentID, cmdInstallUpdates, detach, false, p.Sign, now)
		if err != nil {
			return nil, err
		}
		if nc != nil {
			queued = append(queued, *nc)
		}
	}
	return queued, s.refreshUpdateCounts(ctx, tx, []string{c.AgentID})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Store) raiseReboot(ctx context.Context, tx *sql.Tx, agentID string, o *InstallOutcome) error {
	if o == nil || !o.RebootRequired {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE agents SET reboot_required = $1 WHERE id = $2", true, agentID); err != nil {
		return fmt.Errorf("recording reboot required: %w", err)
	}
	return nil
}

// releaseUpdates moves the approved updates of closed install commands:
// to failed (expired, timed out) or back to where they came from
// (cancelled: pending, or needs_confirmation for confirm_dependencies).
func (s *Store) releaseUpdates(ctx context.Context, tx *sql.Tx, cmds []closedCommand, now time.Time) error {
	if len(cmds) == 0 {
		return nil
	}
	var hist []historyRow
	agents := map[string]bool{}
	for _, c := range cmds {
		rows, err := tx.QueryContext(ctx, "SELECT id, agent_id FROM updates WHERE command_id = $1 AND status = 'approved'", c.id)
		if err != nil {
			return fmt.Errorf("reading the command's updates: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id, agent string
			if err := rows.Scan(&id, &agent); err != nil {
				rows.Close()
				return fmt.Errorf("reading the command's updates: %w", err)
			}
			ids = append(ids, id)
			agents[agent] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			continue
		}
		to, note, clear := UpdateFailed, "", ""
		switch c.status {
		case "expired":
			note = "the install command expired before the agent fetched it"
		case "timed_out":
			note = "the install command timed out without a result"
		case "cancelled":
			to, note, clear = UpdatePending, "the install command was cancelled", ", command_id = NULL"
			if c.typ == cmdConfirmDependencies {
				to = UpdateNeedsConfirmation
			}
		}
		msg := note
		if to != UpdateFailed {
			msg = ""
		}
		if err := inChunks(ids, chunk, func(part []string) error {
			_, err := tx.ExecContext(ctx, "UPDATE updates SET status = $1, status_message = $2, status_changed_at = $3, updated_at = $3"+clear+
				" WHERE id IN ("+params(4, len(part))+")", append([]any{to, msg, now}, anys(part)...)...)
			return err
		}); err != nil {
			return fmt.Errorf("releasing updates: %w", err)
		}
		for _, id := range ids {
			hist = append(hist, historyRow{id, UpdateApproved, to, c.actor, note, now})
		}
	}
	if err := s.insertHistory(ctx, tx, hist); err != nil {
		return err
	}
	return s.refreshUpdateCounts(ctx, tx, sortedKeys(agents))
}

type closedCommand struct {
	id, typ, status, actor string
}

// isInstallType reports whether a command type carries updates.
func isInstallType(t string) bool {
	return t == cmdInstallUpdates || t == cmdConfirmDependencies
}
