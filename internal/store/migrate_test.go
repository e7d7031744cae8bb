package store_test

import (
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
)

// latestMigration is the highest version among the embedded migration files.
func latestMigration(t *testing.T, d store.Dialect) int64 {
	t.Helper()
	names, err := fs.Glob(store.EmbeddedMigrations(d), "*.sql")
	must(t, err)
	var latest int64
	for _, n := range names {
		v, err := strconv.ParseInt(strings.SplitN(n, "_", 2)[0], 10, 64)
		must(t, err)
		latest = max(latest, v)
	}
	if latest == 0 {
		t.Fatalf("no migrations embedded for %s", d)
	}
	return latest
}

func TestMigrationsLockstep(t *testing.T) {
	// Both engines must know the same versions, or SchemaVersion (and
	// /api/v1/info) would depend on the engine.
	list := func(d store.Dialect) []string {
		names, err := fs.Glob(store.EmbeddedMigrations(d), "*.sql")
		must(t, err)
		return names
	}
	if a, b := list(store.SQLite), list(store.Postgres); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("migration files differ: sqlite %v, postgres %v", a, b)
	}
}

func dialectOf(e storetest.Engine) store.Dialect {
	if e == "postgres" {
		return store.Postgres
	}
	return store.SQLite
}

// gooseVersion reads the highest applied version straight from goose's table.
func gooseVersion(t *testing.T, st *store.Store) int64 {
	t.Helper()
	var v int64
	for _, db := range st.DBs() {
		must(t, db.QueryRowContext(ctx, "SELECT MAX(version_id) FROM goose_db_version WHERE is_applied").Scan(&v))
		break
	}
	return v
}

func TestOpenMigrates(t *testing.T) {
	eachEngineName(t, func(t *testing.T, e storetest.Engine) {
		latest := latestMigration(t, dialectOf(e))
		url := storetest.URL(t, e)

		st, err := openURL(e, url, store.Options{})
		must(t, err)
		if st.Dialect() != dialectOf(e) {
			t.Errorf("Dialect() = %q, want %q", st.Dialect(), dialectOf(e))
		}
		if got := st.SchemaVersion(); got != latest {
			t.Errorf("SchemaVersion() = %d, want %d", got, latest)
		}
		if got := gooseVersion(t, st); got != latest {
			t.Errorf("goose version table says %d, want %d", got, latest)
		}
		must(t, st.Ping(ctx))
		must(t, st.SetSetting(ctx, "survives", "reopen", nil))

		// A second handle on the live database (a second replica, or a
		// CLI next to the server) opens without migrating and shares data.
		st2, err := openURL(e, url, store.Options{})
		must(t, err)
		must(t, st2.SetSetting(ctx, "from", "second", nil))
		if v, found, err := st.Setting(ctx, "from"); err != nil || !found || v != "second" {
			t.Errorf("first handle reads %q, %v, %v; want the second handle's write", v, found, err)
		}
		must(t, st2.Close())
		must(t, st.Close())

		// Opening the same database again (a restart) applies nothing and
		// keeps the data.
		for i := 0; i < 2; i++ {
			st, err = openURL(e, url, store.Options{})
			must(t, err)
			if got := st.SchemaVersion(); got != latest {
				t.Errorf("reopen %d: SchemaVersion() = %d, want %d", i, got, latest)
			}
			v, found, err := st.Setting(ctx, "survives")
			must(t, err)
			if !found || v != "reopen" {
				t.Errorf("reopen %d: setting = %q, %v; want \"reopen\", true", i, v, found)
			}
			must(t, st.Close())
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	eachEngineName(t, func(t *testing.T, e storetest.Engine) {
		latest := latestMigration(t, dialectOf(e))
		future := latest + 41
		url := storetest.URL(t, e)
		st, err := openURL(e, url, store.Options{})
		must(t, err)
		// What a newer redflag-server would have left behind.
		rawExec(t, st, "INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, $2)", future, true)
		must(t, st.Close())

		st, err = openURL(e, url, store.Options{})
		if err == nil {
			st.Close()
			t.Fatalf("Open accepted a database at schema version %d (binary knows %d)", future, latest)
		}
		if st != nil {
			t.Errorf("Open returned a store along with error %v", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.FormatInt(future, 10)) || !strings.Contains(msg, fmt.Sprintf("(%d)", latest)) {
			t.Errorf("error %q should name the database's version %d and the binary's %d", msg, future, latest)
		}
	})
}

func TestOpenStopsAtFailingMigration(t *testing.T) {
	eachEngineName(t, func(t *testing.T, e storetest.Engine) {
		d := dialectOf(e)
		latest := latestMigration(t, d)
		good := fstest.MapFS{}
		must(t, fs.WalkDir(store.EmbeddedMigrations(d), ".", func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			b, err := fs.ReadFile(store.EmbeddedMigrations(d), p)
			good[p] = &fstest.MapFile{Data: b}
			return err
		}))
		brokenName := fmt.Sprintf("%05d_broken_column.sql", latest+1)
		broken := fstest.MapFS{}
		for k, v := range good {
			broken[k] = v
		}
		broken[brokenName] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE half_done (id INTEGER);\nALTER TABLE agents ADD COLUMN oops NOT A TYPE;\n")}

		url := storetest.URL(t, e)
		st, err := openURL(e, url, store.WithMigrations(store.Options{}, broken))
		if err == nil {
			st.Close()
			t.Fatal("Open succeeded although a migration is broken")
		}
		if !strings.Contains(err.Error(), brokenName) {
			t.Errorf("error %q does not name the failing migration %s", err, brokenName)
		}

		// The migrations before it were applied, the broken one left no
		// trace (it ran in a transaction), and the released binary opens
		// the database normally.
		st, err = openURL(e, url, store.Options{})
		must(t, err)
		defer st.Close()
		if got := gooseVersion(t, st); got != latest {
			t.Errorf("goose version after the failure = %d, want %d", got, latest)
		}
		for _, db := range st.DBs() {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM half_done").Scan(&n); err == nil {
				t.Error("the failed migration's first statement was committed")
			}
			break
		}
	})
}

func TestOpenBadURLs(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, url string
		want      []string // substrings of the error
		notWant   string
	}{
		{"unknown scheme", "mysql://root@localhost/redflag", []string{"sqlite://", "postgres://"}, ""},
		{"empty", "", []string{"sqlite://"}, ""},
		{"sqlite path with query", "sqlite://" + filepath.Join(dir, "x.db") + "?mode=ro", []string{"'?'"}, ""},
		{"sqlite empty path", "sqlite://", []string{"empty"}, ""},
		{"unreachable postgres hides password", "postgres://redflag:s3cr3t-pw@127.0.0.1:1/redflag?connect_timeout=2", []string{"postgres"}, "s3cr3t-pw"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := store.Open(ctx, c.url, store.Options{})
			if err == nil {
				st.Close()
				t.Fatalf("Open(%q) succeeded", c.url)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if c.notWant != "" && strings.Contains(err.Error(), c.notWant) {
				t.Errorf("error %q leaks %q", err, c.notWant)
			}
		})
	}
}

func TestSQLiteFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "data")
	path := filepath.Join(dir, "redflag.db")
	st, err := store.Open(ctx, "sqlite://"+path, store.Options{})
	must(t, err)
	defer st.Close()
	// Write through the store so the WAL and shared-memory files exist.
	must(t, st.SetSetting(ctx, "k", "v", nil))

	// The database holds token hashes and the audit log: owner-only,
	// including SQLite's side files, in a directory created 0700.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			if p == path {
				t.Fatal(err)
			}
			continue
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), perm)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("database directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}

	// WAL is a property of the file: a raw connection sees it.
	raw, err := sql.Open("sqlite", "file:"+path)
	must(t, err)
	defer raw.Close()
	var mode string
	must(t, raw.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}

	// foreign_keys is per connection: every pool the store uses has it on,
	// and the read pool cannot write.
	for name, db := range st.DBs() {
		var fk int
		must(t, db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk))
		if fk != 1 {
			t.Errorf("%s pool: foreign_keys = %d, want 1", name, fk)
		}
		var jm string
		must(t, db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&jm))
		if jm != "wal" {
			t.Errorf("%s pool: journal_mode = %q, want wal", name, jm)
		}
	}
	if r := st.DBs()["reader"]; r == nil {
		t.Error("SQLite store has no separate reader pool")
	} else if _, err := r.ExecContext(ctx, "INSERT INTO settings (key, value, updated_at) VALUES ('x','y','2020-01-01')"); err == nil {
		t.Error("the reader pool accepted a write")
	}
}

func TestSQLiteExistingFileTightened(t *testing.T) {
	t.Parallel()
	// A database file left world-readable (an older install, a restore)
	// is made owner-only on open.
	path := filepath.Join(t.TempDir(), "redflag.db")
	must(t, os.WriteFile(path, nil, 0o644))
	must(t, os.Chmod(path, 0o644))
	st, err := store.Open(ctx, "sqlite://"+path, store.Options{})
	must(t, err)
	defer st.Close()
	must(t, st.SetSetting(ctx, "k", "v", nil))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}
