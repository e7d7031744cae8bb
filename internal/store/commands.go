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

// Command errors.
var (
	ErrUnknownAgents   = errors.New("unknown agent ids")
	ErrCommandFinished = errors.New("command already has a different result")
	ErrNotPending      = errors.New("only a pending command can be cancelled")
)

// UnknownAgentsError names the agent ids a bulk request referred to that do not exist.
type UnknownAgentsError struct{ IDs []string }

func (e *UnknownAgentsError) Error() string {
	return fmt.Sprintf("%d unknown agent id(s), e.g. %s", len(e.IDs), e.IDs[0])
}

func (e *UnknownAgentsError) Unwrap() error { return ErrUnknownAgents }

// CommandRecord is a command with its delivery state and result, as the
// user API shows it.
type CommandRecord struct {
	Command
	// Hostname is the agent's, so a list needs no lookup per agent.
	Hostname  string     `json:"hostname"`
	CreatedBy string     `json:"created_by"`
	SentAt    *time.Time `json:"sent_at"`
	// AckedAt is when the agent acknowledged receiving the command.
	AckedAt    *time.Time      `json:"acked_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Result     json.RawMessage `json:"result,omitempty"`
}

const commandCols = "id, agent_id, type, params, status, key_id, signature, issued_at, expires_at, created_at, created_by, sent_at, finished_at, result, acked_at, " +
	"COALESCE((SELECT hostname FROM agents WHERE agents.id = commands.agent_id), '')"

func scanCommandRecord(sc interface{ Scan(...any) error }) (CommandRecord, error) {
	var c CommandRecord
	var sent, fin, acked sql.NullTime
	var res sql.NullString
	err := sc.Scan(&c.ID, &c.AgentID, &c.Type, &c.Params, &c.Status, &c.KeyID, &c.Signature, &c.IssuedAt, &c.ExpiresAt,
		&c.CreatedAt, &c.CreatedBy, &sent, &fin, &res, &acked, &c.Hostname)
	c.CreatedAt, c.SentAt, c.FinishedAt, c.AckedAt = c.CreatedAt.UTC(), timePtr(sent), timePtr(fin), timePtr(acked)
	if res.Valid {
		c.Result = json.RawMessage(res.String)
	}
	return c, err
}

// chunk bounds the rows of one multi-row statement (SQLite caps bound
// parameters at 32766).
const chunk = 500

// insertChunk is the rows per multi-row INSERT. The SQLite driver resolves
// each numbered parameter by name, which costs time quadratic in the
// parameters of one statement: 50 rows (500 parameters) keeps a 10,000-agent
// bulk queue well inside its budget, while PostgreSQL prefers fewer, larger
// round trips.
func (s *Store) insertChunk() int {
	if s.dialect == SQLite {
		return 50
	}
	return chunk
}

// CreateCommands stores already-signed commands (one per agent) in one
// transaction. Where the agent already has a pending command of the same
// type, that one is returned instead (enforced by a unique partial index,
// so it holds across replicas). Unknown agent ids fail the whole request.
func (s *Store) CreateCommands(ctx context.Context, cmds []CommandRecord, a *Audit) ([]CommandRecord, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	out := make([]CommandRecord, 0, len(cmds))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := checkAgentsExist(ctx, tx, cmds); err != nil {
			return err
		}
		inserted, err := s.insertCommands(ctx, tx, cmds)
		if err != nil {
			return err
		}
		var dup []CommandRecord
		for _, c := range cmds {
			if inserted[c.ID] {
				c.Status = "pending"
				c.CreatedAt = T(c.CreatedAt)
				out = append(out, c)
			} else {
				dup = append(dup, c)
			}
		}
		for _, d := range dup {
			e, err := scanCommandRecord(tx.QueryRowContext(ctx, "SELECT "+commandCols+
				" FROM commands WHERE agent_id = $1 AND type = $2 AND status = 'pending'", d.AgentID, d.Type))
			if err != nil {
				return fmt.Errorf("reading the pending command already queued: %w", err)
			}
			out = append(out, e)
		}
		if err := s.notifyAgents(ctx, tx, out); err != nil {
			return err
		}
		if a != nil {
			if a.Details == nil {
				a.Details = map[string]any{}
			}
			a.Details["created"], a.Details["already_pending"] = len(inserted), len(dup)
		}
		return insertAudit(ctx, tx, a)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func checkAgentsExist(ctx context.Context, tx *sql.Tx, cmds []CommandRecord) error {
	want := map[string]bool{}
	for _, c := range cmds {
		want[c.AgentID] = true
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		ph := make([]string, len(part))
		args := make([]any, len(part))
		for i, id := range part {
			ph[i], args[i] = fmt.Sprintf("$%d", i+1), id
		}
		rows, err := tx.QueryContext(ctx, "SELECT id FROM agents WHERE id IN ("+strings.Join(ph, ",")+")", args...)
		if err != nil {
			return fmt.Errorf("checking agents: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("checking agents: %w", err)
			}
			delete(want, id)
		}
		rows.Close()
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for id := range want {
			missing = append(missing, id)
		}
		return &UnknownAgentsError{IDs: missing}
	}
	return nil
}

// insertCommands bulk-inserts signed pending commands, skipping those whose
// agent already has a pending command of the type; it returns the ids stored.
func (s *Store) insertCommands(ctx context.Context, tx *sql.Tx, cmds []CommandRecord) (map[string]bool, error) {
	inserted := map[string]bool{}
	step := s.insertChunk()
	for start := 0; start < len(cmds); start += step {
		part := cmds[start:min(start+step, len(cmds))]
		var sb strings.Builder
		args := make([]any, 0, len(part)*12)
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
			return nil, fmt.Errorf("storing commands: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("storing commands: %w", err)
			}
			inserted[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("storing commands: %w", err)
		}
	}
	return inserted, nil
}

// CommandFilter narrows ListCommands.
type CommandFilter struct {
	AgentID string
	Status  string
	Type    string
	Page    Page
}

// ListCommands lists commands newest first, with the total that match.
func (s *Store) ListCommands(ctx context.Context, f CommandFilter) ([]CommandRecord, int, error) {
	p := f.Page.norm()
	cond := " WHERE ($1 = '' OR agent_id = $1) AND ($2 = '' OR status = $2) AND ($3 = '' OR type = $3)"
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM commands"+cond, f.AgentID, f.Status, f.Type).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("counting commands: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+commandCols+" FROM commands"+cond+" ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5",
		f.AgentID, f.Status, f.Type, p.Limit, p.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("listing commands: %w", err)
	}
	defer rows.Close()
	out := []CommandRecord{}
	for rows.Next() {
		c, err := scanCommandRecord(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("reading commands: %w", err)
		}
		out = append(out, c)
	}
	return out, total, rows.Err()
}

// GetCommand reads one command.
func (s *Store) GetCommand(ctx context.Context, id string) (CommandRecord, error) {
	c, err := scanCommandRecord(s.r.QueryRowContext(ctx, "SELECT "+commandCols+" FROM commands WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("reading command: %w", err)
	}
	return c, nil
}

// CancelCommand cancels a pending command.
func (s *Store) CancelCommand(ctx context.Context, id string, now time.Time, a *Audit) (CommandRecord, error) {
	var c CommandRecord
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE commands SET status = 'cancelled', finished_at = $1 WHERE id = $2 AND status = 'pending'", T(now), id)
		if err != nil {
			return fmt.Errorf("cancelling command: %w", err)
		}
		n, _ := res.RowsAffected()
		c, err = scanCommandRecord(tx.QueryRowContext(ctx, "SELECT "+commandCols+" FROM commands WHERE id = $1", id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reading command: %w", err)
		}
		if n == 0 {
			return ErrNotPending
		}
		if isInstallType(c.Type) {
			actor := ""
			if a != nil {
				actor = a.ActorName
			}
			if err := s.releaseUpdates(ctx, tx, []closedCommand{{id: c.ID, typ: c.Type, status: "cancelled", actor: actor}}, T(now)); err != nil {
				return err
			}
		}
		return insertAudit(ctx, tx, a)
	})
	return c, err
}

// ExpireCommands marks pending commands past their expiry as expired and
// sent commands without a result after timeout as timed_out. It returns the
// number of rows of each. The approved updates an expired or timed-out
// install command carried fail, in the same transaction.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time, timeout time.Duration) (expired, timedOut int64, err error) {
	now = T(now)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "UPDATE commands SET status = 'expired', finished_at = $1 WHERE status = 'pending' AND expires_at <= $2 RETURNING id, type",
			now, now.Unix())
		if err != nil {
			return fmt.Errorf("expiring commands: %w", err)
		}
		n1, exp, err := countClosed(rows, "expired")
		if err != nil {
			return fmt.Errorf("expiring commands: %w", err)
		}
		rows, err = tx.QueryContext(ctx, "UPDATE commands SET status = 'timed_out', finished_at = $1 WHERE status = 'sent' AND sent_at <= $2 RETURNING id, type",
			now, now.Add(-timeout))
		if err != nil {
			return fmt.Errorf("timing out commands: %w", err)
		}
		n2, to, err := countClosed(rows, "timed_out")
		if err != nil {
			return fmt.Errorf("timing out commands: %w", err)
		}
		expired, timedOut = n1, n2
		return s.releaseUpdates(ctx, tx, append(exp, to...), now)
	})
	return expired, timedOut, err
}

// countClosed counts the rows of an UPDATE … RETURNING id, type and keeps
// the install commands among them.
func countClosed(rows *sql.Rows, status string) (int64, []closedCommand, error) {
	defer rows.Close()
	var n int64
	var out []closedCommand
	for rows.Next() {
		var id, typ string
		if err := rows.Scan(&id, &typ); err != nil {
			return 0, nil, err
		}
		n++
		if isInstallType(typ) {
			out = append(out, closedCommand{id: id, typ: typ, status: status, actor: "system"})
		}
	}
	return n, out, rows.Err()
}

// NotifyChannel is the PostgreSQL channel on which command wake-ups travel
// between replicas (see package events).
const NotifyChannel = "redflag_commands"

// notifyAgents raises a PostgreSQL notification naming the agents that have
// new commands; it is delivered on commit, to every replica. SQLite has one
// server process, whose in-process hub the caller wakes.
func (s *Store) notifyAgents(ctx context.Context, tx *sql.Tx, cmds []CommandRecord) error {
	if s.dialect != Postgres || len(cmds) == 0 {
		return nil
	}
	var sb strings.Builder
	flush := func() error {
		if sb.Len() == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, sb.String())
		sb.Reset()
		if err != nil {
			return fmt.Errorf("notifying replicas: %w", err)
		}
		return nil
	}
	for _, c := range cmds {
		if sb.Len()+len(c.AgentID)+1 > 7000 { // payloads must stay under 8000 bytes
			if err := flush(); err != nil {
				return err
			}
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(c.AgentID)
	}
	return flush()
}

// HasPending reports whether the agent has a command waiting (one indexed read).
func (s *Store) HasPending(ctx context.Context, agentID string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM commands WHERE agent_id = $1 AND status = 'pending'", agentID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("looking for pending commands: %w", err)
	}
	return n > 0, nil
}

// ClaimPending hands out the agent's due commands (marks them sent) in one
// transaction: the pending ones and those sent but never acknowledged for
// the redelivery delay; each hand-out goes to exactly one caller.
func (s *Store) ClaimPending(ctx context.Context, agentID string, now time.Time) ([]Command, error) {
	var cmds []Command
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		cmds, err = claimCommands(ctx, tx, agentID, T(now), s.redeliver)
		return err
	})
	return cmds, err
}
