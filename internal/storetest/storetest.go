// Package storetest gives tests a fresh, migrated database on every engine
// available: SQLite always, PostgreSQL when REDFLAG_TEST_POSTGRES_URL is set
// (in CI it always is, and a missing one fails instead of skipping).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"github.com/redflaghq/redflag/internal/store"
)

// EnvPostgres names the variable holding the scratch PostgreSQL URL.
const EnvPostgres = "REDFLAG_TEST_POSTGRES_URL"

// Engine is one database engine under test.
type Engine string

// Engines lists the engines to run a test against. Outside CI a missing
// PostgreSQL URL is reported and PostgreSQL skipped; in CI it is a failure.
func Engines(t testing.TB) []Engine {
	out := []Engine{"sqlite"}
	if os.Getenv(EnvPostgres) != "" {
		return append(out, "postgres")
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not set in CI: the PostgreSQL suite must run there", EnvPostgres)
	}
	t.Logf("PostgreSQL cases skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run them", EnvPostgres)
	return out
}

// URL returns a database URL for a fresh, empty database of engine e that
// is dropped when the test ends: a new SQLite file, or a new PostgreSQL
// schema selected through search_path.
func URL(t testing.TB, e Engine) string {
	t.Helper()
	switch e {
	case "sqlite":
		return "sqlite://" + filepath.Join(t.TempDir(), "redflag.db")
	case "postgres":
		base := os.Getenv(EnvPostgres)
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		schema := "rftest_" + hex.EncodeToString(b)
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatalf("opening %s: %v", EnvPostgres, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			db.Close()
			t.Fatalf("creating scratch schema: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
			db.Close()
		})
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("parsing %s: %v", EnvPostgres, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	t.Fatalf("unknown engine %q", e)
	return ""
}

// Open returns a migrated Store on a fresh database, closed at cleanup.
func Open(t testing.TB, e Engine) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), URL(t, e), store.Options{})
	if err != nil {
		t.Fatalf("opening %s store: %v", e, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
