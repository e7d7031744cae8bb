// Package store is RedFlag's one storage API. The same hand-written SQL
// ($N placeholders work on both drivers) runs on the embedded SQLite engine
// and on PostgreSQL; only the DDL differs, in one migrations directory per
// engine. The store knows nothing of HTTP.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the database engine behind a Store.
type Dialect string

// The two engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Errors the rest of the code branches on.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

//go:embed migrations
var migrationsFS embed.FS

// Store is the storage API. For SQLite it keeps a single writer connection
// (SQLite allows one writer at a time; queuing in Go is cheaper than
// busy-waiting in SQLite) and a small read-only pool; for PostgreSQL both
// are the same pool.
type Store struct {
	w, r          *sql.DB
	writeGate     chan struct{} // SQLite only: see acquireWriter
	dialect       Dialect
	schemaVersion int64
	redeliver     time.Duration // see Options.CommandRedeliver
}

// Options tune Open.
type Options struct {
	Logger *slog.Logger
	// MaxOpenConns for PostgreSQL (default 20) and the SQLite read pool (default 4).
	MaxOpenConns int
	// CommandRedeliver is how long a command handed out but never
	// acknowledged by its agent waits before a check-in offers it again
	// (default DefaultCommandRedeliver).
	CommandRedeliver time.Duration
	// migrations, when set, replaces the embedded migrations of the
	// dialect; only tests set it (see export_test.go).
	migrations fs.FS
}

// Open connects to the database named by rawURL ("sqlite://PATH" or
// "postgres://…"), applies pending migrations and returns a ready Store.
func Open(ctx context.Context, rawURL string, opt Options) (*Store, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := connect(ctx, rawURL, opt)
	if err != nil {
		return nil, err
	}
	s.redeliver = opt.CommandRedeliver
	if s.redeliver <= 0 {
		s.redeliver = DefaultCommandRedeliver
	}
	if err := s.migrate(ctx, opt.Logger, opt.migrations); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func connect(ctx context.Context, rawURL string, opt Options) (*Store, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(rawURL, "sqlite://"), opt)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL, opt)
	default:
		return nil, fmt.Errorf("database URL must start with sqlite:// or postgres://, got %q", redactURL(rawURL))
	}
}

func openSQLite(ctx context.Context, path string, opt Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite database path %q is empty or contains '?' or '#'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating database directory %s: %w", dir, err)
		}
	}
	pragmas := "_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	// Owner-only: the database holds token hashes and the audit log.
	_ = os.Chmod(path, 0o600)
	r, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	n := opt.MaxOpenConns
	if n <= 0 {
		n = 4
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &Store{w: w, r: r, dialect: SQLite, writeGate: make(chan struct{}, 1)}, nil
}

func openPostgres(ctx context.Context, dsn string, opt Options) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening postgres %s: %w", redactURL(dsn), err)
	}
	n := opt.MaxOpenConns
	if n <= 0 {
		n = 20
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to postgres %s: %w", redactURL(dsn), err)
	}
	return &Store{w: db, r: db, dialect: Postgres}, nil
}

// redactURL hides a password in a database URL so it can be logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func (s *Store) migrate(ctx context.Context, logger *slog.Logger, sub fs.FS) error {
	if sub == nil {
		var err error
		if sub, err = fs.Sub(migrationsFS, "migrations/"+string(s.dialect)); err != nil {
			return fmt.Errorf("migrations for %s: %w", s.dialect, err)
		}
	}
	gd := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == Postgres {
		gd = goose.DialectPostgres
		// Several replicas may start at once; the advisory lock lets one
		// migrate. The lock is per database and schema, so installations
		// sharing a PostgreSQL server in other schemas do not wait on it.
		var where string
		if err := s.w.QueryRowContext(ctx, "SELECT current_database() || '.' || current_schema()").Scan(&where); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		h := fnv.New64a()
		h.Write([]byte("redflag-migrate:" + where))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64())), lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, s.w, sub, opts...)
	if err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	sources := p.ListSources()
	latest := sources[len(sources)-1].Version
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if current > latest {
		return fmt.Errorf("database schema version %d is newer than this server knows (%d): run a newer redflag-server", current, latest)
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		if r.Error == nil {
			logger.InfoContext(ctx, "applied migration", "migration", filepath.Base(r.Source.Path), "duration", r.Duration)
		}
	}
	if err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) && pe.Failed != nil {
			return fmt.Errorf("migration %s failed: %w", filepath.Base(pe.Failed.Source.Path), pe.Err)
		}
		return fmt.Errorf("applying migrations: %w", err)
	}
	s.schemaVersion = latest
	return nil
}

// Dialect reports the engine.
func (s *Store) Dialect() Dialect { return s.dialect }

// SchemaVersion is the migration version the database is at.
func (s *Store) SchemaVersion() int64 { return s.schemaVersion }

// Ping checks the database answers (for /health).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return err
	}
	var one int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// DBs returns the pools for metrics, named.
func (s *Store) DBs() map[string]*sql.DB {
	if s.w == s.r {
		return map[string]*sql.DB{"main": s.w}
	}
	return map[string]*sql.DB{"writer": s.w, "reader": s.r}
}

// Close closes the pools.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// tx runs fn in one write transaction and commits when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	release, err := s.acquireWriter(ctx)
	if err != nil {
		return err
	}
	defer release()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// acquireWriter queues for SQLite's single writer connection in arrival
// order. database/sql hands a freed connection to a random waiter, which
// under load gives some writers very long waits; a channel's blocked senders
// are served first come, first served. PostgreSQL needs no queue.
func (s *Store) acquireWriter(ctx context.Context) (func(), error) {
	if s.writeGate == nil {
		return func() {}, nil
	}
	select {
	case s.writeGate <- struct{}{}:
		return func() { <-s.writeGate }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Now is the store's notion of a timestamp: UTC, truncated to microseconds so
// values compare equal after a round trip through either engine.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// T normalises a time the same way as Now.
func T(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return T(*t)
}

func timePtr(nt sql.NullTime) *time.Time {
	if !nt.Valid {
		return nil
	}
	t := nt.Time.UTC()
	return &t
}

// isUniqueViolation reports a unique-constraint failure on either engine.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Page selects a window of a list.
type Page struct {
	Limit  int
	Offset int
}

func (p Page) norm() Page {
	if p.Limit <= 0 || p.Limit > 500 {
		p.Limit = 50
	}
	if p.Offset < 0 {
		p.Offset = 0
	}
	return p
}
