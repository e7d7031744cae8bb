package store_test

// Shared fixtures of the store conformance suite. Every test runs the same
// cases against each engine storetest.Engines returns: SQLite always,
// PostgreSQL when REDFLAG_TEST_POSTGRES_URL is set.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
)

var ctx = context.Background()

// TestMain runs the suite with a local zone far from UTC, whatever the
// host's, so a time read back without .UTC() (pgx returns timestamptz in
// time.Local) fails here instead of in production.
func TestMain(m *testing.M) {
	time.Local = time.FixedZone("TEST-0330", -(3*3600 + 1800))
	os.Exit(m.Run())
}

// t0 is the suite's clock. It carries nanoseconds and a non-UTC zone on
// purpose: every test thereby also checks that the store normalises times
// (UTC, microseconds) before they reach either engine.
var t0 = time.Date(2031, 5, 17, 10, 20, 30, 123456789, time.FixedZone("IST", 5*3600+1800))

// hostile is text that must survive every text column byte for byte. No
// entry is a case-insensitive substring of another, so a hostname filter
// for one entry matches exactly its own agent.
var hostile = []struct{ name, s string }{
	{"sql injection", "Robert'); DROP TABLE agents;--"},
	{"quotes", `"double" 'single' ` + "`back` ''"},
	{"backslashes", `C:\Windows\ \\server\share \' \" \n \x00`},
	{"like metacharacters", `100% _under_ \esc`},
	{"placeholders", "$1 $2 ? :name @p1 %s %v"},
	{"emoji", "flag 🚩 zwj 🧑‍💻 keycap 1️⃣"},
	{"rtl", "RTL \u202eevil\u202c עברית العربية"},
	{"combining", "combining e\u0301 n\u0303 A\u030a Z\u0336"},
	{"zero width", "zero\u200bwidth\u200d\ufeff"},
	{"control", "line\nbreak\r\ttab\u0007bell"},
	{"cjk", "箱根-서버-サーバ"},
	{"long", strings.Repeat("ß🚩'\\", 2500)},
}

// pgOpen serialises opening PostgreSQL stores: goose's migration lock is
// one advisory lock per database, and a loser of that race retries only
// every 5 s, which would make parallel tests slow, not wrong.
var pgOpen sync.Mutex

// open returns a migrated store on a fresh database of engine e.
func open(t *testing.T, e storetest.Engine) *store.Store {
	t.Helper()
	if e == "postgres" {
		pgOpen.Lock()
		defer pgOpen.Unlock()
	}
	return storetest.Open(t, e)
}

// openURL is store.Open under the same lock, for tests that need the URL.
func openURL(e storetest.Engine, url string, opt store.Options) (*store.Store, error) {
	if e == "postgres" {
		pgOpen.Lock()
		defer pgOpen.Unlock()
	}
	return store.Open(ctx, url, opt)
}

// eachEngine runs fn, in parallel, on a fresh store of every engine.
func eachEngine(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			t.Parallel()
			fn(t, open(t, e))
		})
	}
}

// eachEngineName is eachEngine for tests that open their own databases.
func eachEngineName(t *testing.T, fn func(t *testing.T, e storetest.Engine)) {
	t.Helper()
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			t.Parallel()
			fn(t, e)
		})
	}
}

func uid(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func counts(t *testing.T, st *store.Store) store.Counts {
	t.Helper()
	c, err := st.CountAll(ctx)
	must(t, err)
	return c
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	want = store.T(want)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v (UTC)", what, got, want)
	}
}

func sameTimePtr(t *testing.T, what string, got *time.Time, want *time.Time) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, got, want)
	default:
		sameTime(t, what, *got, *want)
	}
}

func ptr[T any](v T) *T { return &v }

// regToken stores a registration token and returns it with its secret's hash.
func regToken(t *testing.T, st *store.Store, seats int, createdAt, expiresAt time.Time) store.RegistrationToken {
	t.Helper()
	rt := store.RegistrationToken{
		ID: uid("rt"), TokenHash: hashOf(uid("secret")), Note: "note", Seats: seats,
		CreatedBy: "admin", CreatedAt: createdAt, ExpiresAt: expiresAt,
	}
	must(t, st.CreateRegistrationToken(ctx, rt, nil))
	return rt
}

// regParams describes one registration of machine with hostname at now.
func regParams(tokenHash, machine, hostname string, now time.Time) store.RegisterParams {
	return store.RegisterParams{
		RegistrationTokenHash: tokenHash,
		NewAgentID:            uid("agent"),
		Agent: store.Agent{Hostname: hostname, OSType: "linux", OSVersion: "12", OSArch: "amd64",
			AgentVersion: "1.0.0", MachineID: machine, CheckInIntervalSeconds: 300},
		RefreshTokenID:   uid("refresh"),
		RefreshTokenHash: hashOf(uid("refresh-secret")),
		RefreshExpiresAt: now.Add(90 * 24 * time.Hour),
		Now:              now,
		IP:               "192.0.2.7",
	}
}

// enrolled is an agent together with the hash of its live refresh token.
type enrolled struct {
	store.Agent
	RefreshHash string
}

// enrol registers a new agent with a fresh single-seat token.
func enrol(t *testing.T, st *store.Store, hostname string, now time.Time) enrolled {
	t.Helper()
	tok := regToken(t, st, 1, now.Add(-time.Hour), now.Add(time.Hour))
	return enrolWith(t, st, regParams(tok.TokenHash, hashOf(uid("machine")), hostname, now))
}

func enrolWith(t *testing.T, st *store.Store, p store.RegisterParams) enrolled {
	t.Helper()
	a, _, err := st.RegisterAgent(ctx, p)
	must(t, err)
	return enrolled{Agent: a, RefreshHash: p.RefreshTokenHash}
}

// renew swaps e's refresh token and returns the renewal parameters used.
func renewParams(e enrolled, machine string, now time.Time) store.RenewParams {
	return store.RenewParams{AgentID: e.ID, OldHash: e.RefreshHash, MachineID: machine,
		NewID: uid("refresh"), NewHash: hashOf(uid("refresh-secret")), NewExpiresAt: now.Add(90 * 24 * time.Hour), Now: now}
}

// admin creates the first administrator and returns it.
func admin(t *testing.T, st *store.Store, username string) store.User {
	t.Helper()
	u := store.User{ID: uid("user"), Username: username, PasswordHash: "$argon2id$v=19$hash", Role: "admin",
		CreatedAt: t0, PasswordChangedAt: t0}
	must(t, st.CreateFirstAdmin(ctx, u, "", nil))
	return u
}

// rawExec runs SQL on the store's writer pool, for states the API cannot
// produce on its own (a second user, a retired key, a future schema).
func rawExec(t *testing.T, st *store.Store, q string, args ...any) {
	t.Helper()
	dbs := st.DBs()
	db := dbs["writer"]
	if db == nil {
		db = dbs["main"]
	}
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// secondUser inserts another account directly (the API only ever creates
// the first one) so ownership checks can be tested.
func secondUser(t *testing.T, st *store.Store) store.User {
	t.Helper()
	u := store.User{ID: uid("user"), Username: uid("other"), PasswordHash: "h2", Role: "admin", CreatedAt: t0, PasswordChangedAt: t0}
	rawExec(t, st, `INSERT INTO users (id, username, password_hash, role, created_at, password_changed_at)
		VALUES ($1,$2,$3,$4,$5,$6)`, u.ID, u.Username, u.PasswordHash, u.Role, store.T(t0), store.T(t0))
	return u
}

func lastAudit(t *testing.T, st *store.Store) store.Audit {
	t.Helper()
	rows, err := st.ListAudit(ctx, store.AuditFilter{Limit: 1})
	must(t, err)
	if len(rows) != 1 {
		t.Fatalf("audit log is empty")
	}
	return rows[0]
}

// warmPool opens n connections in every pool of st before a race test, so
// the racing goroutines do not serialise behind connection set-up.
func warmPool(t *testing.T, st *store.Store, n int) {
	t.Helper()
	for _, db := range st.DBs() {
		var wg sync.WaitGroup
		k := min(n, db.Stats().MaxOpenConnections)
		conns := make(chan *sql.Conn, k)
		for i := 0; i < k; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if c, err := db.Conn(cctx); err == nil {
					// A fresh PostgreSQL backend loads its catalog caches on
					// first use of a table; do that now, not in the race.
					_, _ = c.ExecContext(cctx, `SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM settings),
						(SELECT COUNT(*) FROM agents), (SELECT COUNT(*) FROM registration_tokens),
						(SELECT COUNT(*) FROM refresh_tokens), (SELECT COUNT(*) FROM audit_log)`)
					conns <- c
				}
			}()
		}
		wg.Wait()
		close(conns)
		for c := range conns {
			c.Close()
		}
	}
}

// race runs fn(0..n-1) in n goroutines released at the same instant, on a
// warmed pool, and waits for all of them.
func race(t *testing.T, st *store.Store, n int, fn func(i int)) {
	t.Helper()
	warmPool(t, st, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	time.Sleep(5 * time.Millisecond) // let every goroutine park on start
	close(start)
	done.Wait()
}
