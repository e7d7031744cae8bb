package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Overview holds the dashboard's fleet figures (GET /api/v1/stats/overview).
type Overview struct {
	Agents               OverviewAgents `json:"agents"`
	UpdateStatus         map[string]int `json:"update_status"`
	PendingBySeverity    map[string]int `json:"pending_by_severity"`
	PendingByPackageType map[string]int `json:"pending_by_package_type"`
	RebootRequired       int            `json:"reboot_required"`
	FailedInstalls24h    int            `json:"failed_installs_24h"`
	Installed24h         int            `json:"installed_24h"`
}

// OverviewAgents counts agents by derived status.
type OverviewAgents struct {
	Total   int `json:"total"`
	Online  int `json:"online"`
	Offline int `json:"offline"`
	Stale   int `json:"stale"`
}

// AgentUpdateStatuses lists the agent update statuses.
var agentUpdateStatusList = []string{AgentUpToDate, AgentUpdatesAvailable, AgentScanFailed, AgentScanStale, AgentNeverScanned}

// StatsOverview computes the overview with a handful of aggregate queries:
// agents by status, agents by update status (indexed probes per agent),
// sums over agent_update_counts, and the last 24 hours of update_history
// through its index on time. "Pending" means updates in status pending.
func (s *Store) StatsOverview(ctx context.Context, now time.Time) (Overview, error) {
	now = T(now)
	o := Overview{UpdateStatus: map[string]int{}, PendingBySeverity: map[string]int{}, PendingByPackageType: map[string]int{}}
	for _, k := range agentUpdateStatusList {
		o.UpdateStatus[k] = 0
	}
	for _, k := range Severities {
		o.PendingBySeverity[k] = 0
	}
	st, err := s.AgentStatusCounts(ctx, now)
	if err != nil {
		return o, err
	}
	o.Agents = OverviewAgents{Online: st[StatusOnline], Offline: st[StatusOffline], Stale: st[StatusStale]}
	o.Agents.Total = o.Agents.Online + o.Agents.Offline + o.Agents.Stale
	if err := s.groupCount(ctx, o.UpdateStatus, "SELECT "+updateStatusSQL("$1")+" AS us, COUNT(*) FROM agents GROUP BY us", now.Unix()); err != nil {
		return o, fmt.Errorf("counting agents by update status: %w", err)
	}
	if err := s.pendingCounts(ctx, s.r, o.PendingBySeverity, o.PendingByPackageType); err != nil {
		return o, err
	}
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM agents WHERE reboot_required = $1", true).Scan(&o.RebootRequired); err != nil {
		return o, fmt.Errorf("counting reboots: %w", err)
	}
	o.Installed24h, o.FailedInstalls24h, err = installOutcomes(ctx, s.r, now.Add(-24*time.Hour), now)
	return o, err
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (s *Store) groupCount(ctx context.Context, into map[string]int, q string, args ...any) error {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return err
		}
		into[k] += n
	}
	return rows.Err()
}

// pendingCounts sums pending updates by severity and by package type.
func (s *Store) pendingCounts(ctx context.Context, q querier, bySev, byType map[string]int) error {
	rows, err := q.QueryContext(ctx, "SELECT severity, package_type, SUM(n) FROM agent_update_counts WHERE status = 'pending' GROUP BY severity, package_type")
	if err != nil {
		return fmt.Errorf("counting pending updates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sev, typ string
		var n int
		if err := rows.Scan(&sev, &typ, &n); err != nil {
			return fmt.Errorf("counting pending updates: %w", err)
		}
		bySev[sev] += n
		byType[typ] += n
	}
	return rows.Err()
}

// installOutcomes counts the history's moves to installed and to failed in [from, to).
func installOutcomes(ctx context.Context, q querier, from, to time.Time) (installed, failed int, err error) {
	rows, err := q.QueryContext(ctx, "SELECT to_status, COUNT(*) FROM update_history WHERE at >= $1 AND at < $2 AND to_status IN ('installed', 'failed') GROUP BY to_status",
		T(from), T(to))
	if err != nil {
		return 0, 0, fmt.Errorf("counting installs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return 0, 0, fmt.Errorf("counting installs: %w", err)
		}
		if st == UpdateInstalled {
			installed = n
		} else {
			failed = n
		}
	}
	return installed, failed, rows.Err()
}

// Stats kinds of stats_daily.
const (
	statPending     = "pending"
	statPendingType = "pending_type"
	statInstalled   = "installed"
	statFailed      = "failed"
)

// SnapshotDay writes the figures of now's UTC day into stats_daily: the
// pending counts as they are now, and the installs and failures of the day
// so far. Re-running it for the same day replaces that day's rows.
func (s *Store) SnapshotDay(ctx context.Context, now time.Time) error {
	now = T(now)
	day := now.Format(time.DateOnly)
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return s.tx(ctx, func(tx *sql.Tx) error {
		bySev, byType := map[string]int{}, map[string]int{}
		for _, k := range Severities {
			bySev[k] = 0
		}
		if err := s.pendingCounts(ctx, tx, bySev, byType); err != nil {
			return err
		}
		inst, fail, err := installOutcomes(ctx, tx, start, start.Add(24*time.Hour))
		if err != nil {
			return err
		}
		// Package types that no longer have pending updates drop out.
		if _, err := tx.ExecContext(ctx, "DELETE FROM stats_daily WHERE day = $1", day); err != nil {
			return fmt.Errorf("snapshot of %s: %w", day, err)
		}
		put := func(kind, key string, v int) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO stats_daily (day, kind, key, value) VALUES ($1, $2, $3, $4)
				ON CONFLICT (day, kind, key) DO UPDATE SET value = excluded.value`, day, kind, key, v)
			if err != nil {
				return fmt.Errorf("snapshot of %s: %w", day, err)
			}
			return nil
		}
		for k, v := range bySev {
			if err := put(statPending, k, v); err != nil {
				return err
			}
		}
		for k, v := range byType {
			if err := put(statPendingType, k, v); err != nil {
				return err
			}
		}
		if err := put(statInstalled, "", inst); err != nil {
			return err
		}
		return put(statFailed, "", fail)
	})
}

// TrendDay is one day of GET /api/v1/stats/trends.
type TrendDay struct {
	Date                 string         `json:"date"`
	Pending              map[string]int `json:"pending"`
	PendingByPackageType map[string]int `json:"pending_by_package_type"`
	Installed            int            `json:"installed"`
	Failed               int            `json:"failed"`
}

// Trends reads the snapshots of the last days UTC days up to now's,
// ascending; days without a snapshot are left out. One read of the
// primary key's range.
func (s *Store) Trends(ctx context.Context, now time.Time, days int) ([]TrendDay, error) {
	now = T(now)
	from := now.AddDate(0, 0, -(days - 1)).Format(time.DateOnly)
	rows, err := s.r.QueryContext(ctx, "SELECT day, kind, key, value FROM stats_daily WHERE day >= $1 AND day <= $2 ORDER BY day",
		from, now.Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("reading trends: %w", err)
	}
	defer rows.Close()
	out := []TrendDay{}
	for rows.Next() {
		var day, kind, key string
		var v int
		if err := rows.Scan(&day, &kind, &key, &v); err != nil {
			return nil, fmt.Errorf("reading trends: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Date != day {
			td := TrendDay{Date: day, Pending: map[string]int{}, PendingByPackageType: map[string]int{}}
			for _, k := range Severities {
				td.Pending[k] = 0
			}
			out = append(out, td)
		}
		d := &out[len(out)-1]
		switch kind {
		case statPending:
			d.Pending[key] = v
		case statPendingType:
			d.PendingByPackageType[key] = v
		case statInstalled:
			d.Installed = v
		case statFailed:
			d.Failed = v
		}
	}
	return out, rows.Err()
}
