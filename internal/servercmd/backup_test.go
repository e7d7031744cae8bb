package servercmd_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/servercmd"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/testserver"
)

type req = testserver.Req

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// run calls a subcommand and returns its exit code, stdout and stderr.
func run(t *testing.T, f servercmd.Func, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := f(context.Background(), args, getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestBackupWhileServerWrites backs up the store of a real server while
// two clients keep writing to it, then checks each copy: SQLite's
// integrity_check passes, it opens as a store at the current schema, a
// table nobody writes to has all its rows, and each registration token
// written has its audit row (both come from one transaction, so a copy
// from one snapshot has as many of one as of the other).
func TestBackupWhileServerWrites(t *testing.T) {
	ts := testserver.Start(t, "sqlite")
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 10)
	const agents = 5
	for i := range agents {
		ts.RegisterAgent(t, reg, fmt.Sprintf("host-%d", i))
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writes, failures atomic.Int64
	var lastFailure atomic.Value
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r, err := ts.Try(req{Method: "POST", Path: "/api/v1/registration-tokens", Token: admin,
					Body: map[string]any{"seats": 1, "note": strings.Repeat("padding ", 50)}})
				switch {
				case err == nil && r.Status == http.StatusCreated:
					writes.Add(1)
				case ctx.Err() == nil:
					failures.Add(1)
					lastFailure.Store(fmt.Sprint(err, r.Status, string(r.Body)))
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	for writes.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}

	dir := t.TempDir()
	var during int64
	for i := range 3 {
		target := filepath.Join(dir, fmt.Sprintf("backup-%d.db", i))
		before := writes.Load()
		code, out, errOut := run(t, servercmd.Backup, env(map[string]string{"REDFLAG_DATABASE_URL": ts.Config.DatabaseURL}), "--to", target)
		during += writes.Load() - before
		if code != 0 {
			t.Fatalf("backup %d: exit %d: %s", i, code, errOut)
		}
		if !strings.Contains(out, "backed up") || !strings.Contains(out, target) {
			t.Errorf("backup output %q does not name the copy", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	afterBackups := writes.Load()
	for writes.Load() < afterBackups+5 { // the server still writes
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d writes failed while backing up; last: %v", n, lastFailure.Load())
	}
	t.Logf("%d writes in total, %d of them while a backup ran", writes.Load(), during)

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"backup-0.db", "backup-1.db", "backup-2.db"}) {
		t.Fatalf("backup directory holds %v, want exactly the three copies", names)
	}
	var prevTokens int64
	for _, n := range names {
		path := filepath.Join(dir, n)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600 (it holds token hashes)", n, fi.Mode().Perm())
		}
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var check string
		var agentRows, tokens, audited int64
		must(t, db.QueryRow("PRAGMA integrity_check").Scan(&check))
		must(t, db.QueryRow("SELECT COUNT(*) FROM agents").Scan(&agentRows))
		must(t, db.QueryRow("SELECT COUNT(*) FROM registration_tokens").Scan(&tokens))
		must(t, db.QueryRow("SELECT COUNT(*) FROM audit_log WHERE action = 'registration_token.create'").Scan(&audited))
		db.Close()
		if check != "ok" {
			t.Errorf("%s: integrity_check says %q", n, check)
		}
		if agentRows != agents {
			t.Errorf("%s: %d agents, want %d", n, agentRows, agents)
		}
		if tokens != audited {
			t.Errorf("%s: %d registration tokens but %d audit rows for them: not one snapshot", n, tokens, audited)
		}
		if tokens < prevTokens || tokens < 20 {
			t.Errorf("%s: %d registration tokens (previous copy %d)", n, tokens, prevTokens)
		}
		prevTokens = tokens
		st, err := store.Open(context.Background(), "sqlite://"+path, store.Options{})
		if err != nil {
			t.Fatalf("%s does not open as a store: %v", n, err)
		}
		if st.SchemaVersion() != ts.Server.Store().SchemaVersion() {
			t.Errorf("%s: schema version %d, want %d", n, st.SchemaVersion(), ts.Server.Store().SchemaVersion())
		}
		st.Close()
	}
	var live int64
	w, _ := ts.Server.Store().Pools()
	must(t, w.QueryRow("SELECT COUNT(*) FROM registration_tokens").Scan(&live))
	if prevTokens >= live {
		t.Errorf("the last copy has %d registration tokens and the live store %d: the store should have more, writes went on after the copy", prevTokens, live)
	}
}

// TestBackupRefuses: bad input gives a plain sentence and exit 2 (the
// command line) or 1 (the work), and never leaves a partial file.
func TestBackupRefuses(t *testing.T) {
	ts := testserver.Start(t, "sqlite")
	dbPath := strings.TrimPrefix(ts.Config.DatabaseURL, "sqlite://")
	getenv := env(map[string]string{"REDFLAG_DATA_DIR": filepath.Dir(dbPath)})
	out := t.TempDir()
	existing := filepath.Join(out, "existing.db")
	must(t, os.WriteFile(existing, []byte("keep me"), 0o600))
	notADir := filepath.Join(out, "file")
	must(t, os.WriteFile(notADir, nil, 0o600))
	emptyDir := t.TempDir()
	// A directory this process may not create files in: root ignores file
	// modes, but nobody creates regular files in /proc.
	unwritable := t.TempDir()
	must(t, os.Chmod(unwritable, 0o500))
	if os.Geteuid() == 0 && runtime.GOOS == "linux" {
		unwritable = "/proc"
	}

	cases := []struct {
		name string
		env  func(string) string
		args []string
		code int
		want string
	}{
		{"missing --to", getenv, nil, 2, "--to FILE is required"},
		{"unknown flag", getenv, []string{"--to", "x.db", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"extra argument", getenv, []string{"--to", "x.db", "now"}, 2, `unexpected argument "now"`},
		{"postgres store", env(map[string]string{"REDFLAG_DATABASE_URL": "postgres://u:secret@db/redflag"}),
			[]string{"--to", filepath.Join(out, "pg.db")}, 2, "pg_dump"},
		{"other scheme", getenv, []string{"--database-url", "mysql://x", "--to", filepath.Join(out, "m.db")}, 2, "must start with sqlite://"},
		{"existing target", getenv, []string{"--to", existing}, 1, "already exists"},
		{"target is a directory", getenv, []string{"--to", out, "--force"}, 1, "is a directory"},
		{"missing directory", getenv, []string{"--to", filepath.Join(out, "nope", "b.db")}, 1, "does not exist: create it first"},
		{"unwritable directory", getenv, []string{"--to", filepath.Join(unwritable, "b.db")}, 1, "cannot write the backup in " + unwritable},
		{"parent is a file", getenv, []string{"--to", filepath.Join(notADir, "b.db")}, 1, "does not exist"},
		{"target is the database", getenv, []string{"--to", dbPath, "--force"}, 1, "is the database itself"},
		{"no database", env(nil), []string{"--data-dir", emptyDir, "--to", filepath.Join(out, "n.db")}, 1, "no database at"},
	}
	for _, c := range cases {
		if c.name == "unwritable directory" && os.Geteuid() == 0 && runtime.GOOS != "linux" {
			continue // root may write anywhere there
		}
		code, stdout, stderr := run(t, servercmd.Backup, c.env, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.name, code, stderr, c.code, c.want)
		}
		if stdout != "" {
			t.Errorf("%s: printed %q on stdout", c.name, stdout)
		}
		if strings.Contains(stderr, "secret") {
			t.Errorf("%s: the database password was printed: %q", c.name, stderr)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("the existing file was changed to %q", b)
	}
	if m, _ := filepath.Glob(filepath.Join(emptyDir, "*")); len(m) != 0 {
		t.Errorf("backing up a missing database created %v", m)
	}
	left, _ := os.ReadDir(out)
	for _, e := range left {
		if e.Name() != "existing.db" && e.Name() != "file" {
			t.Errorf("a refused backup left %s", e.Name())
		}
	}

	// --force replaces the existing file with a good copy.
	code, _, stderr := run(t, servercmd.Backup, getenv, "--to", existing, "--force")
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	db, err := sql.Open("sqlite", "file:"+existing+"?mode=ro")
	must(t, err)
	defer db.Close()
	var users int
	must(t, db.QueryRow("SELECT COUNT(*) FROM users").Scan(&users))
	if users != 1 {
		t.Errorf("the forced copy has %d users, want 1", users)
	}
	// A relative target lands in the working directory's terms, absolute in the message.
	t.Chdir(out)
	code, stdout, stderr := run(t, servercmd.Backup, getenv, "--to", "relative.db")
	if code != 0 || !strings.Contains(stdout, filepath.Join(out, "relative.db")) {
		t.Fatalf("relative target: exit %d, %q %q", code, stdout, stderr)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
