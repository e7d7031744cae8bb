package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Update statuses. SPEC §7 names pending, approved, installing, installed,
// failed, rejected and ignored; RedFlag adds needs_confirmation (a dry run
// found extra packages an admin must accept) and resolved (the agent stopped
// reporting the update without RedFlag installing it).
const (
	UpdatePending           = "pending"
	UpdateApproved          = "approved"
	UpdateInstalling        = "installing"
	UpdateInstalled         = "installed"
	UpdateFailed            = "failed"
	UpdateRejected          = "rejected"
	UpdateIgnored           = "ignored"
	UpdateNeedsConfirmation = "needs_confirmation"
	UpdateResolved          = "resolved"
)

// UpdateStatuses lists every update status.
var UpdateStatuses = []string{UpdatePending, UpdateApproved, UpdateInstalling, UpdateInstalled, UpdateFailed,
	UpdateRejected, UpdateIgnored, UpdateNeedsConfirmation, UpdateResolved}

// OpenUpdateStatuses are the statuses of an update still waiting to be
// installed: what an agent's pending_updates counts.
var OpenUpdateStatuses = []string{UpdatePending, UpdateApproved, UpdateNeedsConfirmation, UpdateFailed}

const openStatusesSQL = "('pending','approved','needs_confirmation','failed')"

// UpdateStatusOpen is the list filter for every open status at once.
const UpdateStatusOpen = "open"

// Severities, most urgent first (SPEC §7), with their sort rank.
var Severities = []string{"critical", "important", "moderate", "low", "unknown"}

var severityRank = map[string]int{"critical": 0, "important": 1, "moderate": 2, "low": 3, "unknown": 4}

// Agent update statuses: what the dashboard shows for a machine.
const (
	AgentNeverScanned     = "never_scanned"
	AgentScanFailed       = "scan_failed"
	AgentScanStale        = "scan_stale"
	AgentUpToDate         = "up_to_date"
	AgentUpdatesAvailable = "updates_available"
)

// AgentUpdateStatuses lists them.
var AgentUpdateStatuses = []string{AgentNeverScanned, AgentScanFailed, AgentScanStale, AgentUpToDate, AgentUpdatesAvailable}

// Scan statuses of one scanner.
const (
	ScanOK     = "ok"
	ScanFailed = "failed"
)

// DefaultScanIntervalSeconds is how often an agent is assumed to scan when
// its report does not say (the scan_interval_seconds setting overrides it).
const DefaultScanIntervalSeconds = 21600

// Errors of the update routes.
var (
	// ErrReportHashUnknown answers a hash-only report whose hash is not the
	// one stored for that agent and scanner: the agent must send the full report.
	ErrReportHashUnknown = errors.New("report hash unknown")
	ErrUnknownUpdates    = errors.New("unknown update ids")
	ErrUpdateState       = errors.New("updates are in a state that does not allow this action")
)

// UnknownUpdatesError names the update ids of a bulk request that do not exist.
type UnknownUpdatesError struct{ IDs []string }

func (e *UnknownUpdatesError) Error() string {
	return fmt.Sprintf("%d unknown update id(s), e.g. %s", len(e.IDs), e.IDs[0])
}

func (e *UnknownUpdatesError) Unwrap() error { return ErrUnknownUpdates }

// UpdateState is one update refused by a bulk action, with its status.
type UpdateState struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// UpdateStateError lists the updates whose status does not allow an action.
type UpdateStateError struct {
	Action string
	Items  []UpdateState
}

func (e *UpdateStateError) Error() string {
	return fmt.Sprintf("%d update(s) cannot be %s from their status, e.g. %s (%s)", len(e.Items), pastTense(e.Action),
		e.Items[0].ID, e.Items[0].Status)
}

func (e *UpdateStateError) Unwrap() error { return ErrUpdateState }

func pastTense(action string) string {
	switch action {
	case ActionApprove:
		return "approved"
	case ActionReject:
		return "rejected"
	case ActionIgnore:
		return "ignored"
	case ActionConfirm:
		return "confirmed"
	}
	return action
}

// UpdateInput is one update as an agent reported it, already validated by
// the caller (text checked, package type and severity known).
type UpdateInput struct {
	PackageType      string
	PackageName      string
	CurrentVersion   string
	AvailableVersion string
	Severity         string
	Source           string
	CVEIDs           []string
	SizeBytes        int64
	RequiresReboot   bool
	Metadata         map[string]string
}

// UpdateReport is one scanner's report from one agent.
type UpdateReport struct {
	AgentID   string
	Scanner   string
	ScannedAt time.Time
	// IntervalSeconds is how often the agent runs this scanner; 0 = not said.
	IntervalSeconds int
	// Full: the report carried an "updates" array (possibly empty).
	Full    bool
	Updates []UpdateInput
	// Hash is the SHA-256 hex of the "updates" bytes of a full report.
	Hash string
	// UnchangedHash is set on a hash-only report.
	UnchangedHash string
	// Errors are the scanner's failures; with any, the scan counts as failed.
	Errors []string
	// Sign signs the install commands re-queued when the report changes
	// approved updates that wait in a pending command.
	Sign CommandSigner
	Now  time.Time
}

// ReportOutcome is what an accepted report did.
type ReportOutcome struct {
	// Hash is the hash the server accepts as unchanged_hash next time ("" for none).
	Hash                   string
	New, Changed, Resolved int
	// Commands are install commands queued again because the report changed
	// the approved updates a pending command carried.
	Commands []CommandRecord
}

// InstallItem names one update inside install_updates or confirm_dependencies.
type InstallItem struct {
	UpdateID    string
	PackageType string
	PackageName string
	Version     string
}

// CommandSigner builds and signs an install_updates or confirm_dependencies
// command for one agent. The store calls it inside the transaction that
// decides the command's content; the command is stored signed.
type CommandSigner func(agentID, typ string, items []InstallItem, dryRun bool) (CommandRecord, error)

// storedInstallParams reads back the params of an install command.
type storedInstallParams struct {
	Updates []struct {
		UpdateID string `json:"update_id"`
	} `json:"updates"`
	DryRun bool `json:"dry_run"`
}

func (p storedInstallParams) ids() []string {
	out := make([]string, len(p.Updates))
	for i, u := range p.Updates {
		out[i] = u.UpdateID
	}
	return out
}

// Command types that carry updates.
const (
	cmdInstallUpdates      = "install_updates"
	cmdConfirmDependencies = "confirm_dependencies"
)

// maxParams bounds the parameters of one statement: the SQLite driver
// resolves numbered parameters by name in quadratic time (see insertChunk).
func (s *Store) maxParams() int {
	if s.dialect == SQLite {
		return 500
	}
	return 10000
}

func (s *Store) rowsPerStatement(cols int) int { return max(1, s.maxParams()/cols) }

// execValues runs prefix + " VALUES (…),(…) " + suffix over n rows of cols
// values each (row(i) builds row i, and may refuse it), in as few
// statements as the parameter limit allows; the full-size statement is
// prepared once and reused. On SQLite the placeholders are positional (?):
// its lookup of numbered ($N) parameters is quadratic in their count, and
// positional ones allow many more rows per statement.
func (s *Store) execValues(ctx context.Context, tx *sql.Tx, prefix, suffix string, cols, n int, row func(i int) ([]any, error)) error {
	per := s.rowsPerStatement(cols)
	if s.dialect == SQLite {
		per = max(1, 4000/cols)
	}
	build := func(rows int) string {
		var sb strings.Builder
		sb.WriteString(prefix)
		sb.WriteString(" VALUES ")
		for r := 0; r < rows; r++ {
			if r > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for c := 0; c < cols; c++ {
				if c > 0 {
					sb.WriteByte(',')
				}
				if s.dialect == SQLite {
					sb.WriteByte('?')
				} else {
					fmt.Fprintf(&sb, "$%d", r*cols+c+1)
				}
			}
			sb.WriteByte(')')
		}
		sb.WriteString(" ")
		sb.WriteString(suffix)
		return sb.String()
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for start := 0; start < n; start += per {
		rows := min(per, n-start)
		args := make([]any, 0, rows*cols)
		for i := start; i < start+rows; i++ {
			v, err := row(i)
			if err != nil {
				return err
			}
			args = append(args, v...)
		}
		var err error
		if rows == per {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, build(per)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, build(rows), args...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// params returns "$from,$from+1,…" for n parameters.
func params(from, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "$%d", from+i)
	}
	return sb.String()
}

// inChunks runs fn on consecutive parts of ids of at most size.
func inChunks(ids []string, size int, fn func(part []string) error) error {
	for start := 0; start < len(ids); start += size {
		if err := fn(ids[start:min(start+size, len(ids))]); err != nil {
			return err
		}
	}
	return nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// lockAgents serialises the transactions that change the updates of these
// agents: on PostgreSQL it locks their rows in id order (so two bulk actions
// cannot deadlock); SQLite has one writer already. It returns the ids that exist.
func (s *Store) lockAgents(ctx context.Context, tx *sql.Tx, ids []string) (map[string]bool, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	found := make(map[string]bool, len(ids))
	lock := ""
	if s.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	err := inChunks(ids, chunk, func(part []string) error {
		rows, err := tx.QueryContext(ctx, "SELECT id FROM agents WHERE id IN ("+params(1, len(part))+") ORDER BY id"+lock, anys(part)...)
		if err != nil {
			return fmt.Errorf("locking agents: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("locking agents: %w", err)
			}
			found[id] = true
		}
		return rows.Err()
	})
	return found, err
}

// historyRow is one row of update_history.
type historyRow struct {
	updateID, from, to, actor, note string
	at                              time.Time
}

func (s *Store) insertHistory(ctx context.Context, tx *sql.Tx, rows []historyRow) error {
	err := s.execValues(ctx, tx, "INSERT INTO update_history (update_id, from_status, to_status, actor, note, at)", "", 6, len(rows),
		func(i int) ([]any, error) {
			h := rows[i]
			return []any{h.updateID, h.from, h.to, h.actor, truncate(h.note, 1000), T(h.at)}, nil
		})
	if err != nil {
		return fmt.Errorf("writing update history: %w", err)
	}
	return nil
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// tail keeps the last n bytes of s on a rune boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && (s[i]&0xC0) == 0x80 {
		i++
	}
	return s[i:]
}

// refreshUpdateCounts rebuilds agent_update_counts for the agents, from
// their open updates. It runs in the transaction that changed them.
func (s *Store) refreshUpdateCounts(ctx context.Context, tx *sql.Tx, agentIDs []string) error {
	ids := slices.Clone(agentIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return inChunks(ids, chunk, func(part []string) error {
		in := params(1, len(part))
		if _, err := tx.ExecContext(ctx, "DELETE FROM agent_update_counts WHERE agent_id IN ("+in+")", anys(part)...); err != nil {
			return fmt.Errorf("refreshing update counts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_update_counts (agent_id, status, package_type, severity, n)
			SELECT agent_id, status, package_type, severity, COUNT(*) FROM updates
			WHERE agent_id IN (`+in+`) AND status IN `+openStatusesSQL+`
			GROUP BY agent_id, status, package_type, severity`, anys(part)...); err != nil {
			return fmt.Errorf("refreshing update counts: %w", err)
		}
		return nil
	})
}

// existingUpdate is an update row as the ingest compares it with a report.
type existingUpdate struct {
	id, name, cur, avail, sev, source, cves, meta, status, cmdID, cmdStatus string
	size                                                                    int64
	reboot                                                                  bool
}

func (e existingUpdate) inFlight() bool { return e.status == UpdateApproved && e.cmdStatus == "sent" }

func (e existingUpdate) sameData(u UpdateInput) bool {
	if e.cur != u.CurrentVersion || e.avail != u.AvailableVersion || e.sev != u.Severity || e.source != u.Source ||
		e.size != u.SizeBytes || e.reboot != u.RequiresReboot {
		return false
	}
	var cves []string
	var meta map[string]string
	if json.Unmarshal([]byte(e.cves), &cves) != nil || json.Unmarshal([]byte(e.meta), &meta) != nil {
		return false
	}
	return slices.Equal(cves, u.CVEIDs) && maps.Equal(meta, u.Metadata)
}

// reportStatus decides the status of a known update the agent reported again,
// and the history note when it changes.
func reportStatus(e existingUpdate, u UpdateInput) (string, string) {
	switch {
	case e.inFlight():
		return e.status, "" // the install command in flight settles it
	case u.AvailableVersion != e.avail:
		note := fmt.Sprintf("version %s available (was %s)", u.AvailableVersion, e.avail)
		return UpdatePending, note
	case e.status == UpdateInstalled:
		return UpdatePending, "reported again after it was installed"
	case e.status == UpdateResolved:
		return UpdatePending, "reported again"
	}
	return e.status, ""
}

// reportActor is the history actor of changes an agent's report makes.
const reportActor = "agent"

// IngestUpdateReport applies one scanner's report:
//   - hash-only (UnchangedHash): refreshes the scan's times when the hash is
//     the stored one (one write); otherwise ErrReportHashUnknown.
//   - errors without updates: records the scan as failed, changes no update.
//   - full: in one transaction, upserts every reported update (new ones and
//     new versions are pending, with history), resolves every update of that
//     agent and package type the report no longer lists ("resolved
//     elsewhere"; never deleted) and stores the report hash. With errors too
//     the report is partial: nothing is resolved and no hash is kept.
func (s *Store) IngestUpdateReport(ctx context.Context, r UpdateReport) (ReportOutcome, error) {
	now := T(r.Now)
	switch {
	case r.UnchangedHash != "":
		return s.refreshUnchanged(ctx, r, now)
	case !r.Full:
		return s.recordScanFailure(ctx, r, now)
	}
	return s.ingestFull(ctx, r, now)
}

func scanError(errs []string) string {
	return truncate(strings.Join(errs, "; "), 4096)
}

func (s *Store) refreshUnchanged(ctx context.Context, r UpdateReport, now time.Time) (ReportOutcome, error) {
	release, err := s.acquireWriter(ctx)
	if err != nil {
		return ReportOutcome{}, err
	}
	defer release()
	res, err := s.w.ExecContext(ctx, `UPDATE agent_scans SET status = 'ok', error = '', scanned_at = $1, last_report_at = $2,
			last_success_at = $2, last_success_unix = $3,
			interval_seconds = CASE WHEN $4 > 0 THEN $4 ELSE interval_seconds END
		WHERE agent_id = $5 AND scanner = $6 AND report_hash = $7 AND report_hash <> ''`,
		T(r.ScannedAt), now, now.Unix(), r.IntervalSeconds, r.AgentID, r.Scanner, r.UnchangedHash)
	if err != nil {
		return ReportOutcome{}, fmt.Errorf("recording unchanged report: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ReportOutcome{}, ErrReportHashUnknown
	}
	return ReportOutcome{Hash: r.UnchangedHash}, nil
}

func (s *Store) recordScanFailure(ctx context.Context, r UpdateReport, now time.Time) (ReportOutcome, error) {
	var out ReportOutcome
	err := s.tx(ctx, func(tx *sql.Tx) error {
		found, err := s.lockAgents(ctx, tx, []string{r.AgentID})
		if err != nil {
			return err
		}
		if !found[r.AgentID] {
			return ErrNotFound
		}
		return tx.QueryRowContext(ctx, `INSERT INTO agent_scans (agent_id, scanner, status, error, scanned_at, last_report_at, interval_seconds)
			VALUES ($1,$2,'failed',$3,$4,$5,$6)
			ON CONFLICT (agent_id, scanner) DO UPDATE SET status = 'failed', error = excluded.error, scanned_at = excluded.scanned_at,
				last_report_at = excluded.last_report_at,
				interval_seconds = CASE WHEN excluded.interval_seconds > 0 THEN excluded.interval_seconds ELSE agent_scans.interval_seconds END
			RETURNING report_hash`, r.AgentID, r.Scanner, scanError(r.Errors), T(r.ScannedAt), now, r.IntervalSeconds).Scan(&out.Hash)
	})
	return out, err
}

const upsertUpdateCols = 20

func (s *Store) ingestFull(ctx context.Context, r UpdateReport, now time.Time) (ReportOutcome, error) {
	var out ReportOutcome
	partial := len(r.Errors) > 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = ReportOutcome{}
		found, err := s.lockAgents(ctx, tx, []string{r.AgentID})
		if err != nil {
			return err
		}
		if !found[r.AgentID] {
			return ErrNotFound
		}
		existing, err := loadUpdatesOfType(ctx, tx, r.AgentID, r.Scanner)
		if err != nil {
			return err
		}
		type row struct {
			id, status string
			u          UpdateInput
		}
		var upserts []row
		var hist []historyRow
		seen := make(map[string]bool, len(r.Updates))
		requeue := false
		for _, u := range r.Updates {
			if u.PackageType != r.Scanner {
				return fmt.Errorf("update %q has package type %q in a %s report: %w", u.PackageName, u.PackageType, r.Scanner, ErrInvalid)
			}
			if seen[u.PackageName] {
				return fmt.Errorf("package %q is listed twice: %w", u.PackageName, ErrInvalid)
			}
			seen[u.PackageName] = true
			e, ok := existing[u.PackageName]
			if !ok {
				id := uuid.Must(uuid.NewV7()).String()
				upserts = append(upserts, row{id: id, status: UpdatePending, u: u})
				hist = append(hist, historyRow{updateID: id, to: UpdatePending, actor: reportActor, note: "reported by the agent", at: now})
				out.New++
				continue
			}
			status, note := reportStatus(e, u)
			if status == e.status && e.sameData(u) {
				continue
			}
			upserts = append(upserts, row{id: e.id, status: status, u: u})
			out.Changed++
			if status != e.status {
				hist = append(hist, historyRow{updateID: e.id, from: e.status, to: status, actor: reportActor, note: note, at: now})
				if e.status == UpdateApproved && e.cmdStatus == "pending" {
					requeue = true
				}
			}
		}
		var resolve []string
		if !partial {
			for _, e := range existing {
				if seen[e.name] || e.status == UpdateInstalled || e.status == UpdateResolved || e.inFlight() {
					continue
				}
				resolve = append(resolve, e.id)
				hist = append(hist, historyRow{updateID: e.id, from: e.status, to: UpdateResolved, actor: reportActor,
					note: "no longer reported by the agent (resolved elsewhere)", at: now})
				if e.status == UpdateApproved && e.cmdStatus == "pending" {
					requeue = true
				}
			}
			sort.Strings(resolve)
		}
		out.Resolved = len(resolve)

		// A row whose status changes here starts afresh: no command, no
		// extras, no message. One whose status stays keeps them.
		err = s.execValues(ctx, tx, `INSERT INTO updates (id, agent_id, package_type, package_name, current_version, available_version,
				severity, severity_rank, source, cve_ids, size_bytes, requires_reboot, metadata, status, first_seen_at, last_seen_at,
				updated_at, status_changed_at, status_message, installed_version)`,
			`ON CONFLICT (agent_id, package_type, package_name) DO UPDATE SET
				current_version = excluded.current_version, available_version = excluded.available_version,
				severity = excluded.severity, severity_rank = excluded.severity_rank, source = excluded.source,
				cve_ids = excluded.cve_ids, size_bytes = excluded.size_bytes, requires_reboot = excluded.requires_reboot,
				metadata = excluded.metadata, last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at,
				status_changed_at = CASE WHEN updates.status = excluded.status THEN updates.status_changed_at ELSE excluded.status_changed_at END,
				command_id = CASE WHEN updates.status = excluded.status THEN updates.command_id ELSE NULL END,
				extras = CASE WHEN updates.status = excluded.status THEN updates.extras ELSE NULL END,
				status_message = CASE WHEN updates.status = excluded.status THEN updates.status_message ELSE '' END,
				installed_version = CASE WHEN updates.status = excluded.status THEN updates.installed_version ELSE '' END,
				status = excluded.status`,
			upsertUpdateCols, len(upserts), func(i int) ([]any, error) {
				w := upserts[i]
				rank, ok := severityRank[w.u.Severity]
				if !ok {
					return nil, fmt.Errorf("update %q: severity %q: %w", w.u.PackageName, w.u.Severity, ErrInvalid)
				}
				cves, meta := w.u.CVEIDs, w.u.Metadata
				if cves == nil {
					cves = []string{}
				}
				if meta == nil {
					meta = map[string]string{}
				}
				cb, err := json.Marshal(cves)
				if err != nil {
					return nil, fmt.Errorf("encoding cve ids: %w", err)
				}
				mb, err := json.Marshal(meta)
				if err != nil {
					return nil, fmt.Errorf("encoding metadata: %w", err)
				}
				return []any{w.id, r.AgentID, w.u.PackageType, w.u.PackageName, w.u.CurrentVersion, w.u.AvailableVersion,
					w.u.Severity, rank, w.u.Source, string(cb), w.u.SizeBytes, w.u.RequiresReboot, string(mb), w.status,
					now, now, now, now, "", ""}, nil
			})
		if errors.Is(err, ErrInvalid) {
			return err
		}
		if err != nil {
			return fmt.Errorf("storing updates: %w", err)
		}
		if err := inChunks(resolve, chunk, func(part []string) error {
			_, err := tx.ExecContext(ctx, `UPDATE updates SET status = 'resolved', status_changed_at = $1, updated_at = $1, status_message = ''
				WHERE id IN (`+params(2, len(part))+")", append([]any{now}, anys(part)...)...)
			if err != nil {
				return fmt.Errorf("resolving updates: %w", err)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := s.insertHistory(ctx, tx, hist); err != nil {
			return err
		}
		if !partial {
			// Every update of the report is current now, changed or not.
			if _, err := tx.ExecContext(ctx, `UPDATE updates SET last_seen_at = $1
				WHERE agent_id = $2 AND package_type = $3 AND status NOT IN ('resolved', 'installed') AND last_seen_at < $1`,
				now, r.AgentID, r.Scanner); err != nil {
				return fmt.Errorf("marking updates seen: %w", err)
			}
			out.Hash = r.Hash
			if _, err := tx.ExecContext(ctx, `INSERT INTO agent_scans (agent_id, scanner, status, error, scanned_at, last_report_at,
					last_success_at, last_success_unix, report_hash, interval_seconds)
				VALUES ($1,$2,'ok','',$3,$4,$4,$5,$6,$7)
				ON CONFLICT (agent_id, scanner) DO UPDATE SET status = 'ok', error = '', scanned_at = excluded.scanned_at,
					last_report_at = excluded.last_report_at, last_success_at = excluded.last_success_at,
					last_success_unix = excluded.last_success_unix, report_hash = excluded.report_hash,
					interval_seconds = CASE WHEN excluded.interval_seconds > 0 THEN excluded.interval_seconds ELSE agent_scans.interval_seconds END`,
				r.AgentID, r.Scanner, T(r.ScannedAt), now, now.Unix(), r.Hash, r.IntervalSeconds); err != nil {
				return fmt.Errorf("recording scan: %w", err)
			}
		} else if _, err := tx.ExecContext(ctx, `INSERT INTO agent_scans (agent_id, scanner, status, error, scanned_at, last_report_at, interval_seconds)
				VALUES ($1,$2,'failed',$3,$4,$5,$6)
				ON CONFLICT (agent_id, scanner) DO UPDATE SET status = 'failed', error = excluded.error, scanned_at = excluded.scanned_at,
					last_report_at = excluded.last_report_at, report_hash = '',
					interval_seconds = CASE WHEN excluded.interval_seconds > 0 THEN excluded.interval_seconds ELSE agent_scans.interval_seconds END`,
			r.AgentID, r.Scanner, scanError(r.Errors), T(r.ScannedAt), now, r.IntervalSeconds); err != nil {
			return fmt.Errorf("recording scan: %w", err)
		}
		if len(upserts)+len(resolve) > 0 {
			if err := s.refreshUpdateCounts(ctx, tx, []string{r.AgentID}); err != nil {
				return err
			}
		}
		if requeue {
			cmds, err := s.requeuePending(ctx, tx, r.AgentID, r.Sign, now)
			if err != nil {
				return err
			}
			out.Commands = cmds
		}
		return nil
	})
	return out, err
}

func loadUpdatesOfType(ctx context.Context, tx *sql.Tx, agentID, packageType string) (map[string]existingUpdate, error) {
	rows, err := tx.QueryContext(ctx, `SELECT u.id, u.package_name, u.current_version, u.available_version, u.severity, u.source,
			u.cve_ids, u.metadata, u.status, COALESCE(u.command_id, ''), COALESCE(c.status, ''), u.size_bytes, u.requires_reboot
		FROM updates u LEFT JOIN commands c ON c.id = u.command_id
		WHERE u.agent_id = $1 AND u.package_type = $2`, agentID, packageType)
	if err != nil {
		return nil, fmt.Errorf("reading updates: %w", err)
	}
	defer rows.Close()
	out := map[string]existingUpdate{}
	for rows.Next() {
		var e existingUpdate
		if err := rows.Scan(&e.id, &e.name, &e.cur, &e.avail, &e.sev, &e.source, &e.cves, &e.meta, &e.status, &e.cmdID, &e.cmdStatus,
			&e.size, &e.reboot); err != nil {
			return nil, fmt.Errorf("reading updates: %w", err)
		}
		out[e.name] = e
	}
	return out, rows.Err()
}

// UpdateRecord is an update as the user API shows it.
type UpdateRecord struct {
	ID               string            `json:"id"`
	AgentID          string            `json:"agent_id"`
	Hostname         string            `json:"hostname"`
	PackageType      string            `json:"package_type"`
	PackageName      string            `json:"package_name"`
	CurrentVersion   string            `json:"current_version"`
	AvailableVersion string            `json:"available_version"`
	Severity         string            `json:"severity"`
	Source           string            `json:"source"`
	CVEIDs           []string          `json:"cve_ids"`
	SizeBytes        int64             `json:"size_bytes"`
	RequiresReboot   bool              `json:"requires_reboot"`
	Metadata         map[string]string `json:"metadata"`
	Status           string            `json:"status"`
	// StatusMessage is the agent's word on the last install or dry run.
	StatusMessage    string `json:"status_message"`
	InstalledVersion string `json:"installed_version"`
	// CommandID is the install command that carries (or last carried) the
	// update, and CommandStatus that command's state.
	CommandID     *string `json:"command_id"`
	CommandStatus *string `json:"command_status"`
	// Extras are the packages beyond the update a dry run would also change.
	Extras          json.RawMessage `json:"extras,omitempty"`
	FirstSeenAt     time.Time       `json:"first_seen_at"`
	LastSeenAt      time.Time       `json:"last_seen_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	StatusChangedAt *time.Time      `json:"status_changed_at"`
}

// UpdateHistoryEntry is one status change of an update.
type UpdateHistoryEntry struct {
	ID         int64     `json:"id"`
	FromStatus string    `json:"from_status"`
	ToStatus   string    `json:"to_status"`
	Actor      string    `json:"actor"`
	Note       string    `json:"note"`
	At         time.Time `json:"at"`
}

// UpdateDetail is an update with its history, oldest first.
type UpdateDetail struct {
	UpdateRecord
	History []UpdateHistoryEntry `json:"history"`
}

const updateSelect = `SELECT u.id, u.agent_id, a.hostname, u.package_type, u.package_name, u.current_version, u.available_version,
	u.severity, u.source, u.cve_ids, u.size_bytes, u.requires_reboot, u.metadata, u.status, u.status_message, u.installed_version,
	u.command_id, c.status, u.extras, u.first_seen_at, u.last_seen_at, u.updated_at, u.status_changed_at
	FROM updates u JOIN agents a ON a.id = u.agent_id LEFT JOIN commands c ON c.id = u.command_id`

func scanUpdate(sc interface{ Scan(...any) error }) (UpdateRecord, error) {
	var u UpdateRecord
	var cves, meta string
	var cmdID, cmdStatus, extras sql.NullString
	var changed sql.NullTime
	err := sc.Scan(&u.ID, &u.AgentID, &u.Hostname, &u.PackageType, &u.PackageName, &u.CurrentVersion, &u.AvailableVersion,
		&u.Severity, &u.Source, &cves, &u.SizeBytes, &u.RequiresReboot, &meta, &u.Status, &u.StatusMessage, &u.InstalledVersion,
		&cmdID, &cmdStatus, &extras, &u.FirstSeenAt, &u.LastSeenAt, &u.UpdatedAt, &changed)
	if err != nil {
		return u, err
	}
	u.FirstSeenAt, u.LastSeenAt, u.UpdatedAt, u.StatusChangedAt = u.FirstSeenAt.UTC(), u.LastSeenAt.UTC(), u.UpdatedAt.UTC(), timePtr(changed)
	if cmdID.Valid {
		u.CommandID = &cmdID.String
	}
	if cmdStatus.Valid {
		u.CommandStatus = &cmdStatus.String
	}
	if extras.Valid {
		u.Extras = json.RawMessage(extras.String)
	}
	u.CVEIDs, u.Metadata = []string{}, map[string]string{}
	_ = json.Unmarshal([]byte(cves), &u.CVEIDs)
	_ = json.Unmarshal([]byte(meta), &u.Metadata)
	return u, nil
}

// UpdateFilter narrows ListUpdates. Status may also be "open" (every open
// status). Sort is one of SortableUpdateFields, optionally prefixed with '-'.
type UpdateFilter struct {
	AgentID     string
	Severity    string
	PackageType string
	Status      string
	Query       string // package name, case-insensitive substring
	Sort        string
	Page        Page
}

// SortableUpdateFields are the accepted UpdateFilter.Sort keys.
var SortableUpdateFields = map[string]string{
	"severity": "u.severity_rank", "package_name": "lower(u.package_name)", "package_type": "u.package_type",
	"status": "u.status", "first_seen_at": "u.first_seen_at", "updated_at": "u.updated_at", "hostname": "lower(a.hostname)",
}

// ListUpdates lists updates, filtered, sorted and paged in SQL, with the
// total that match. The default order is most urgent first, then by name.
func (s *Store) ListUpdates(ctx context.Context, f UpdateFilter) ([]UpdateRecord, int, error) {
	p := f.Page.norm()
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.AgentID != "" {
		where = append(where, "u.agent_id = "+arg(f.AgentID))
	}
	if f.Severity != "" {
		where = append(where, "u.severity = "+arg(f.Severity))
	}
	if f.PackageType != "" {
		where = append(where, "u.package_type = "+arg(f.PackageType))
	}
	switch {
	case f.Status == UpdateStatusOpen:
		where = append(where, "u.status IN "+openStatusesSQL)
	case f.Status != "":
		if !slices.Contains(UpdateStatuses, f.Status) {
			return nil, 0, fmt.Errorf("status %q: %w", f.Status, ErrInvalid)
		}
		where = append(where, "u.status = "+arg(f.Status))
	}
	if f.Query != "" {
		where = append(where, "lower(u.package_name) LIKE lower("+arg("%"+escapeLike(f.Query)+"%")+") ESCAPE '\\'")
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	order := "u.severity_rank ASC, lower(u.package_name) ASC, u.id ASC"
	if f.Sort != "" {
		key, dir := strings.TrimPrefix(f.Sort, "-"), "ASC"
		if strings.HasPrefix(f.Sort, "-") {
			dir = "DESC"
		}
		col, ok := SortableUpdateFields[key]
		if !ok {
			return nil, 0, fmt.Errorf("sort %q: %w", f.Sort, ErrInvalid)
		}
		order = col + " " + dir + ", u.id " + dir
	}
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM updates u"+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("counting updates: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, updateSelect+cond+" ORDER BY "+order+" LIMIT "+arg(p.Limit)+" OFFSET "+arg(p.Offset), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing updates: %w", err)
	}
	defer rows.Close()
	out := []UpdateRecord{}
	for rows.Next() {
		u, err := scanUpdate(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("reading updates: %w", err)
		}
		out = append(out, u)
	}
	return out, total, rows.Err()
}

// maxHistory bounds the history GetUpdate returns (the latest entries).
const maxHistory = 500

// GetUpdate reads one update with its latest history, oldest first.
func (s *Store) GetUpdate(ctx context.Context, id string) (UpdateDetail, error) {
	var d UpdateDetail
	u, err := scanUpdate(s.r.QueryRowContext(ctx, updateSelect+" WHERE u.id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("reading update: %w", err)
	}
	d.UpdateRecord = u
	rows, err := s.r.QueryContext(ctx, `SELECT id, from_status, to_status, actor, note, at FROM update_history
		WHERE update_id = $1 ORDER BY id DESC LIMIT $2`, id, maxHistory)
	if err != nil {
		return d, fmt.Errorf("reading update history: %w", err)
	}
	defer rows.Close()
	d.History = []UpdateHistoryEntry{}
	for rows.Next() {
		var h UpdateHistoryEntry
		if err := rows.Scan(&h.ID, &h.FromStatus, &h.ToStatus, &h.Actor, &h.Note, &h.At); err != nil {
			return d, fmt.Errorf("reading update history: %w", err)
		}
		h.At = h.At.UTC()
		d.History = append(d.History, h)
	}
	slices.Reverse(d.History)
	return d, rows.Err()
}

// UpdateCounts counts an agent's open updates (statuses pending, approved,
// needs_confirmation, failed).
type UpdateCounts struct {
	Total         int            `json:"total"`
	BySeverity    map[string]int `json:"by_severity"`
	ByPackageType map[string]int `json:"by_package_type"`
	ByStatus      map[string]int `json:"by_status"`
	// ByPackageTypeSeverity counts by package type, then severity (only
	// the pairs that occur).
	ByPackageTypeSeverity map[string]map[string]int `json:"by_package_type_severity"`
}

func newUpdateCounts() *UpdateCounts {
	c := &UpdateCounts{BySeverity: map[string]int{}, ByPackageType: map[string]int{}, ByStatus: map[string]int{},
		ByPackageTypeSeverity: map[string]map[string]int{}}
	for _, s := range Severities {
		c.BySeverity[s] = 0
	}
	for _, s := range OpenUpdateStatuses {
		c.ByStatus[s] = 0
	}
	return c
}

// AgentScan is the state of one scanner of an agent.
type AgentScan struct {
	Scanner         string     `json:"scanner"`
	Status          string     `json:"status"`
	Error           string     `json:"error"`
	ScannedAt       *time.Time `json:"scanned_at"`
	LastReportAt    time.Time  `json:"last_report_at"`
	LastSuccessAt   *time.Time `json:"last_success_at"`
	IntervalSeconds int        `json:"interval_seconds"`
	// Stale: no success within twice the scan interval (the agent's, or
	// the scan_interval_seconds setting when the agent did not say).
	Stale bool `json:"stale"`
}

// scanIntervalSQL is the scan_interval_seconds setting, or its default.
const scanIntervalSQL = "COALESCE((SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'scan_interval_seconds'), 21600)"

// updateStatusSQL derives an agent's update status in SQL (for the list
// filter and the answer alike); nowArg is the placeholder of the current
// Unix time. Each branch is an indexed probe of a few rows.
func updateStatusSQL(nowArg string) string {
	return `(CASE
		WHEN NOT EXISTS (SELECT 1 FROM agent_scans s WHERE s.agent_id = agents.id) THEN 'never_scanned'
		WHEN EXISTS (SELECT 1 FROM agent_scans s WHERE s.agent_id = agents.id AND s.status = 'failed') THEN 'scan_failed'
		WHEN EXISTS (SELECT 1 FROM agent_scans s WHERE s.agent_id = agents.id AND s.last_success_unix +
			2 * (CASE WHEN s.interval_seconds > 0 THEN s.interval_seconds ELSE ` + scanIntervalSQL + ` END) <= ` + nowArg + `) THEN 'scan_stale'
		WHEN EXISTS (SELECT 1 FROM agent_update_counts c WHERE c.agent_id = agents.id) THEN 'updates_available'
		ELSE 'up_to_date' END)`
}

// fillUpdateCounts sets PendingUpdates on each agent.
func (s *Store) fillUpdateCounts(ctx context.Context, agents []Agent) error {
	if len(agents) == 0 {
		return nil
	}
	idx := make(map[string]int, len(agents))
	ids := make([]string, len(agents))
	for i := range agents {
		agents[i].PendingUpdates = newUpdateCounts()
		idx[agents[i].ID] = i
		ids[i] = agents[i].ID
	}
	return inChunks(ids, chunk, func(part []string) error {
		rows, err := s.r.QueryContext(ctx, "SELECT agent_id, status, package_type, severity, n FROM agent_update_counts WHERE agent_id IN ("+
			params(1, len(part))+")", anys(part)...)
		if err != nil {
			return fmt.Errorf("reading update counts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, status, typ, sev string
			var n int
			if err := rows.Scan(&id, &status, &typ, &sev, &n); err != nil {
				return fmt.Errorf("reading update counts: %w", err)
			}
			c := agents[idx[id]].PendingUpdates
			c.Total += n
			c.BySeverity[sev] += n
			c.ByPackageType[typ] += n
			c.ByStatus[status] += n
			if c.ByPackageTypeSeverity[typ] == nil {
				c.ByPackageTypeSeverity[typ] = map[string]int{}
			}
			c.ByPackageTypeSeverity[typ][sev] += n
		}
		return rows.Err()
	})
}

// agentScans reads the scanner states of one agent.
func (s *Store) agentScans(ctx context.Context, agentID string, defaultInterval int, now time.Time) ([]AgentScan, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT scanner, status, error, scanned_at, last_report_at, last_success_at, last_success_unix,
			interval_seconds FROM agent_scans WHERE agent_id = $1 ORDER BY scanner`, agentID)
	if err != nil {
		return nil, fmt.Errorf("reading scans: %w", err)
	}
	defer rows.Close()
	out := []AgentScan{}
	for rows.Next() {
		var sc AgentScan
		var scanned, success sql.NullTime
		var successUnix int64
		if err := rows.Scan(&sc.Scanner, &sc.Status, &sc.Error, &scanned, &sc.LastReportAt, &success, &successUnix, &sc.IntervalSeconds); err != nil {
			return nil, fmt.Errorf("reading scans: %w", err)
		}
		sc.ScannedAt, sc.LastSuccessAt, sc.LastReportAt = timePtr(scanned), timePtr(success), sc.LastReportAt.UTC()
		iv := sc.IntervalSeconds
		if iv <= 0 {
			iv = defaultInterval
		}
		sc.Stale = successUnix+2*int64(iv) <= now.Unix()
		out = append(out, sc)
	}
	return out, rows.Err()
}

// PendingUpdatesBySeverity counts open updates across the fleet by status
// and severity (for /metrics): a sum over agent_update_counts, a few rows
// per agent.
func (s *Store) PendingUpdatesBySeverity(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT status, severity, SUM(n) FROM agent_update_counts GROUP BY status, severity")
	if err != nil {
		return nil, fmt.Errorf("counting updates: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for _, st := range OpenUpdateStatuses {
		out[st] = map[string]int{}
		for _, sev := range Severities {
			out[st][sev] = 0
		}
	}
	for rows.Next() {
		var st, sev string
		var n int
		if err := rows.Scan(&st, &sev, &n); err != nil {
			return nil, fmt.Errorf("counting updates: %w", err)
		}
		if out[st] == nil {
			out[st] = map[string]int{}
		}
		out[st][sev] += n
	}
	return out, rows.Err()
}
