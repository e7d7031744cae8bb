// Package storemigrate copies a whole RedFlag store from one database to
// another: a (stopped) SQLite store into an empty PostgreSQL database, or
// the reverse. It is the engine of `redflag-server migrate-store`.
//
// Both databases are first brought to this binary's schema version with
// the store's own migrations. The tables are then discovered from the
// schema at run time (goose's version table excepted), so tables added by
// later migrations are copied without any change here. Rows are read from
// one snapshot of the source and written in foreign-key order, in batches,
// inside one transaction on the target; each value is converted to the type
// of its target column, as read from the target's catalogue (SQLite
// INTEGER booleans to BOOLEAN, text timestamps to TIMESTAMPTZ, JSON text to
// JSONB, and back). PostgreSQL sequences are moved past the copied ids, and
// the row count of every table is checked before the transaction commits.
package storemigrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/redflaghq/redflag/internal/store"
)

// Errors the command line branches on.
var (
	// ErrTargetNotEmpty: a table of the target already holds rows.
	ErrTargetNotEmpty = errors.New("the target database is not empty")
)

// UsageError says the URLs themselves are wrong (scheme, same database).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// DefaultBatchSize is the number of rows one INSERT carries by default.
const DefaultBatchSize = 500

// sqliteMaxBatch bounds the rows of one INSERT into SQLite, whose numbered
// parameter lookup grows quadratically with the parameter count (the store
// uses 50-row chunks for the same reason).
const sqliteMaxBatch = 50

// postgresMaxParams is PostgreSQL's limit of parameters per statement.
const postgresMaxParams = 65535

// Options tune Copy.
type Options struct {
	// BatchSize is the most rows one INSERT carries (default
	// DefaultBatchSize; at most 50 into SQLite).
	BatchSize int
	// Progress, when set, is called after each table is copied.
	Progress func(table string, rows int64)
}

// TableCount is the number of rows copied into one table.
type TableCount struct {
	Table string
	Rows  int64
}

// Result describes a finished copy.
type Result struct {
	SchemaVersion int64
	// Tables in the order they were copied (parents before children).
	Tables []TableCount
	// Sequences moved past the copied ids, as "table.column" (PostgreSQL
	// targets only).
	Sequences []string
}

// Rows is the total of rows copied.
func (r Result) Rows() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Rows
	}
	return n
}

// querier is what reading needs: a *sql.Tx or a *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Copy copies every table of the store at fromURL into the empty store at
// toURL (both "sqlite://PATH" or "postgres://…"). The source must not be in
// use by a server: rows written after Copy took its snapshot are not
// copied. On any error the target's data transaction is rolled back (the
// schema the migrations created stays).
func Copy(ctx context.Context, fromURL, toURL string, opt Options) (Result, error) {
	var res Result
	fromD, err := dialectOf(fromURL)
	if err != nil {
		return res, &UsageError{"--from: " + err.Error()}
	}
	toD, err := dialectOf(toURL)
	if err != nil {
		return res, &UsageError{"--to: " + err.Error()}
	}
	if sameDatabase(fromURL, toURL) {
		return res, &UsageError{"--from and --to name the same database"}
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	if fromD == store.SQLite {
		p := sqlitePath(fromURL)
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return res, fmt.Errorf("there is no SQLite database at %s", p)
			}
			return res, fmt.Errorf("reading %s: %w", p, err)
		}
	}

	// The source first: it is brought to this binary's schema version, the
	// one the target will get.
	src, err := store.Open(ctx, fromURL, store.Options{})
	if err != nil {
		return res, fmt.Errorf("opening the source: %w", err)
	}
	defer src.Close()
	snap, endSnap, err := snapshot(ctx, src)
	if err != nil {
		return res, err
	}
	defer endSnap()
	srcSchema, err := inspect(ctx, snap, fromD)
	if err != nil {
		return res, fmt.Errorf("reading the source's schema: %w", err)
	}
	if err := checkEmpty(ctx, toURL, toD, srcSchema.names()); err != nil {
		return res, err
	}

	dst, err := store.Open(ctx, toURL, store.Options{})
	if err != nil {
		return res, fmt.Errorf("opening the target: %w", err)
	}
	defer dst.Close()
	if src.SchemaVersion() != dst.SchemaVersion() {
		return res, fmt.Errorf("schema versions differ after migrating: source %d, target %d", src.SchemaVersion(), dst.SchemaVersion())
	}
	res.SchemaVersion = dst.SchemaVersion()

	w, _ := dst.Pools()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("beginning the target transaction: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	dstSchema, err := inspect(ctx, tx, toD)
	if err != nil {
		return res, fmt.Errorf("reading the target's schema: %w", err)
	}
	if err := sameTables(srcSchema, dstSchema); err != nil {
		return res, err
	}
	order, err := copyOrder(srcSchema, dstSchema)
	if err != nil {
		return res, err
	}
	// Rows the migrations themselves may have seeded: the source has them
	// too (same migrations), and copying them again would collide.
	for i := len(order) - 1; i >= 0; i-- {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+ident(order[i])); err != nil {
			return res, fmt.Errorf("clearing %s on the target: %w", order[i], err)
		}
	}

	batch := opt.BatchSize
	if toD == store.SQLite {
		batch = min(batch, sqliteMaxBatch)
	}
	for _, name := range order {
		n, err := copyTable(ctx, snap, tx, dstSchema.tables[name], toD, batch)
		if err != nil {
			return res, err
		}
		res.Tables = append(res.Tables, TableCount{Table: name, Rows: n})
		if opt.Progress != nil {
			opt.Progress(name, n)
		}
	}
	if toD == store.Postgres {
		if res.Sequences, err = resetSequences(ctx, tx); err != nil {
			return res, err
		}
	}
	if err := verifyCounts(ctx, snap, tx, res.Tables); err != nil {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("committing the copy: %w", err)
	}
	return res, nil
}

// snapshot starts one read transaction on the source, so every table is
// read as of the same moment.
func snapshot(ctx context.Context, src *store.Store) (querier, func(), error) {
	_, r := src.Pools()
	if src.Dialect() == store.Postgres {
		tx, err := r.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return nil, nil, fmt.Errorf("beginning the source snapshot: %w", err)
		}
		return tx, func() { _ = tx.Rollback() }, nil
	}
	// SQLite: a deferred transaction on one connection of the read-only
	// pool (the pool's own BeginTx would ask for the write lock), pinned by
	// a first read.
	conn, err := r.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the source: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("beginning the source snapshot: %w", err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		return nil, nil, fmt.Errorf("beginning the source snapshot: %w", err)
	}
	return conn, func() {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
	}, nil
}

// checkEmpty refuses a target in which any of the store's tables holds a
// row. It runs before the target's migrations, so a missing table is empty.
func checkEmpty(ctx context.Context, toURL string, d store.Dialect, tables []string) error {
	var db *sql.DB
	var err error
	if d == store.SQLite {
		p := sqlitePath(toURL)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if db, err = sql.Open("sqlite", "file:"+p+"?mode=rw&_pragma=busy_timeout(10000)"); err != nil {
			return fmt.Errorf("opening the target: %w", err)
		}
	} else if db, err = sql.Open("pgx", toURL); err != nil {
		return fmt.Errorf("opening the target: %w", err)
	}
	defer db.Close()
	existing, err := listTables(ctx, db, d)
	if err != nil {
		return fmt.Errorf("reading the target: %w", err)
	}
	for _, t := range tables {
		if !slices.Contains(existing, t) {
			continue
		}
		var has bool
		if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident(t)+")").Scan(&has); err != nil {
			return fmt.Errorf("reading the target's %s: %w", t, err)
		}
		if has {
			return fmt.Errorf("%w: its table %s has rows. migrate-store copies into an empty database only: "+
				"create a new database (or schema) for it", ErrTargetNotEmpty, t)
		}
	}
	return nil
}

// copyTable streams one table from the source snapshot into the target
// transaction, converting each value to its target column's type.
func copyTable(ctx context.Context, src querier, tx *sql.Tx, t *table, d store.Dialect, batch int) (int64, error) {
	ncol := len(t.cols)
	if d == store.Postgres && batch*ncol > postgresMaxParams {
		batch = max(1, postgresMaxParams/ncol)
	}
	names := make([]string, ncol)
	for i, c := range t.cols {
		names[i] = ident(c.name)
	}
	list := strings.Join(names, ", ")
	rows, err := src.QueryContext(ctx, "SELECT "+list+" FROM "+ident(t.name))
	if err != nil {
		return 0, fmt.Errorf("reading %s from the source: %w", t.name, err)
	}
	defer rows.Close()

	insert := func(n int) string {
		var b strings.Builder
		b.WriteString("INSERT INTO " + ident(t.name) + " (" + list + ")")
		if t.identityAlways {
			b.WriteString(" OVERRIDING SYSTEM VALUE")
		}
		b.WriteString(" VALUES ")
		p := 1
		for r := range n {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for c := range ncol {
				if c > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "$%d", p)
				p++
			}
			b.WriteByte(')')
		}
		return b.String()
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	flush := func(args []any) error {
		n := len(args) / ncol
		if n == batch {
			if full == nil {
				st, err := tx.PrepareContext(ctx, insert(batch))
				if err != nil {
					return err
				}
				full = st
			}
			_, err := full.ExecContext(ctx, args...)
			return err
		}
		_, err := tx.ExecContext(ctx, insert(n), args...)
		return err
	}

	vals := make([]any, ncol)
	ptrs := make([]any, ncol)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	args := make([]any, 0, batch*ncol)
	var copied, seen int64
	for rows.Next() {
		seen++
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("reading %s row %d: %w", t.name, seen, err)
		}
		for i, v := range vals {
			cv, err := convert(v, t.cols[i].kind)
			if err != nil {
				return 0, fmt.Errorf("table %s, row %d, column %s: %w", t.name, seen, t.cols[i].name, err)
			}
			args = append(args, cv)
		}
		if len(args) == batch*ncol {
			if err := flush(args); err != nil {
				return 0, fmt.Errorf("writing %s rows %d-%d: %w", t.name, copied+1, seen, err)
			}
			copied = seen
			args = args[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading %s from the source: %w", t.name, err)
	}
	if len(args) > 0 {
		if err := flush(args); err != nil {
			return 0, fmt.Errorf("writing %s rows %d-%d: %w", t.name, copied+1, seen, err)
		}
	}
	return seen, nil
}

// resetSequences moves every sequence behind a serial or identity column
// past the highest id copied, so the next insert does not collide.
func resetSequences(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name,
			pg_get_serial_sequence(quote_ident(table_schema) || '.' || quote_ident(table_name), column_name)
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')
		ORDER BY table_name, column_name`)
	if err != nil {
		return nil, fmt.Errorf("listing sequences: %w", err)
	}
	type seq struct{ table, column, name string }
	var seqs []seq
	for rows.Next() {
		var s seq
		var name sql.NullString
		if err := rows.Scan(&s.table, &s.column, &name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing sequences: %w", err)
		}
		if name.Valid && s.table != store.GooseTable {
			s.name = name.String
			seqs = append(seqs, s)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing sequences: %w", err)
	}
	var out []string
	for _, s := range seqs {
		// is_called = false: the next nextval returns exactly max + 1.
		q := "SELECT setval($1, COALESCE((SELECT MAX(" + ident(s.column) + ") FROM " + ident(s.table) + "), 0) + 1, false)"
		if _, err := tx.ExecContext(ctx, q, s.name); err != nil {
			return nil, fmt.Errorf("resetting the sequence of %s.%s: %w", s.table, s.column, err)
		}
		out = append(out, s.table+"."+s.column)
	}
	return out, nil
}

// verifyCounts compares, for every table, the rows in the source snapshot,
// the rows copied and the rows now in the target transaction.
func verifyCounts(ctx context.Context, src querier, tx *sql.Tx, copied []TableCount) error {
	for _, c := range copied {
		var ns, nt int64
		q := "SELECT COUNT(*) FROM " + ident(c.Table)
		if err := src.QueryRowContext(ctx, q).Scan(&ns); err != nil {
			return fmt.Errorf("counting %s on the source: %w", c.Table, err)
		}
		if err := tx.QueryRowContext(ctx, q).Scan(&nt); err != nil {
			return fmt.Errorf("counting %s on the target: %w", c.Table, err)
		}
		if ns != c.Rows || nt != c.Rows {
			return fmt.Errorf("row counts of %s differ: source %d, copied %d, target %d; nothing was committed", c.Table, ns, c.Rows, nt)
		}
	}
	return nil
}

// dialectOf names the engine of a database URL.
func dialectOf(u string) (store.Dialect, error) {
	switch {
	case strings.HasPrefix(u, "sqlite://"):
		if sqlitePath(u) == "" {
			return "", errors.New("sqlite:// needs a file path, e.g. sqlite:///var/lib/redflag/redflag.db")
		}
		return store.SQLite, nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return store.Postgres, nil
	case u == "":
		return "", errors.New("a database URL is required (sqlite://PATH or postgres://…)")
	}
	return "", errors.New("a database URL must start with sqlite:// or postgres://")
}

func sqlitePath(u string) string { return strings.TrimPrefix(u, "sqlite://") }

func sameDatabase(a, b string) bool {
	if a == b {
		return true
	}
	if !strings.HasPrefix(a, "sqlite://") || !strings.HasPrefix(b, "sqlite://") {
		return false
	}
	pa, err1 := filepath.Abs(sqlitePath(a))
	pb, err2 := filepath.Abs(sqlitePath(b))
	if err1 == nil && err2 == nil && pa == pb {
		return true
	}
	fa, err1 := os.Stat(sqlitePath(a))
	fb, err2 := os.Stat(sqlitePath(b))
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// ident quotes an SQL identifier (both engines use double quotes).
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
