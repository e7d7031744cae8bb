package store

import (
	"context"
	"fmt"
	"hash/fnv"
)

// RunExclusive runs fn only if no other server replica is running the job
// called name at the same time, and reports whether it ran. On PostgreSQL
// this is a session advisory lock on a dedicated connection; SQLite has a
// single server process, whose caller serialises its own jobs.
func (s *Store) RunExclusive(ctx context.Context, name string, fn func(context.Context) error) (bool, error) {
	if s.dialect != Postgres {
		return true, fn(ctx)
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("job %s: getting a connection: %w", name, err)
	}
	defer conn.Close()
	h := fnv.New64a()
	h.Write([]byte("redflag-job:" + name))
	key := int64(h.Sum64())
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
		return false, fmt.Errorf("job %s: taking its lock: %w", name, err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		// An unlock that fails is harmless: the lock dies with the session.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key)
	}()
	return true, fn(ctx)
}
