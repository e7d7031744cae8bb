package storemigrate_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/servercmd"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storemigrate"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

type req = testserver.Req

func needPostgres(t *testing.T) {
	t.Helper()
	if !slices.Contains(storetest.Engines(t), "postgres") {
		t.Skip("migrate-store needs both engines")
	}
}

// snapshotAPI is what the admin sees through the API: compared before and
// after the move, decoded so that JSONB's normalised text compares equal.
type snapshotAPI struct {
	Agents   map[string]any
	Commands map[string]any
	Audit    map[int64]any
	Settings any
}

func takeSnapshot(t *testing.T, ts *testserver.TS, tok string, agentIDs, commandIDs []string) snapshotAPI {
	t.Helper()
	s := snapshotAPI{Agents: map[string]any{}, Commands: map[string]any{}, Audit: map[int64]any{}}
	decode := func(r testserver.Resp) any {
		var v any
		r.JSON(t, &v)
		return v
	}
	for _, id := range agentIDs {
		a := decode(ts.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/agents/" + id, Token: tok})).(map[string]any)
		delete(a, "status") // derived from the clock
		s.Agents[id] = a
	}
	for _, id := range commandIDs {
		s.Commands[id] = decode(ts.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/commands/" + id, Token: tok}))
	}
	var audit struct {
		Items []map[string]any `json:"items"`
	}
	ts.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/audit?limit=500", Token: tok}).JSON(t, &audit)
	for _, e := range audit.Items {
		s.Audit[int64(e["id"].(float64))] = e
	}
	s.Settings = decode(ts.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/settings", Token: tok}))
	return s
}

// TestMigrateStoreSQLiteToPostgres builds a store through the real server's
// API on SQLite, moves it to PostgreSQL with migrate-store, starts the real
// server there on the same data directory and checks through the API that
// nothing was lost: the admin's password, an API token, the agents, their
// refresh tokens, signed commands and results, settings and the audit log.
// Then it moves the PostgreSQL store back to a new SQLite file.
func TestMigrateStoreSQLiteToPostgres(t *testing.T) {
	needPostgres(t)
	ctx := context.Background()
	ts := testserver.Start(t, "sqlite")
	admin := ts.Login(t)

	var apiTok struct {
		Token string `json:"token"`
	}
	ts.Expect(t, http.StatusCreated, req{Method: "POST", Path: "/api/v1/api-tokens", Token: admin,
		Body: map[string]any{"name": "laptop"}}).JSON(t, &apiTok)
	reg, _ := ts.RegistrationToken(t, admin, 5)
	a1 := ts.RegisterAgent(t, reg, "web-1")
	a2 := ts.RegisterAgent(t, reg, "db-1")
	a3 := ts.RegisterAgent(t, reg, "mail-1")
	ts.Expect(t, http.StatusNoContent, req{Method: "POST", Path: "/api/v1/agents/" + a1.ID + "/reports/system",
		Token: a1.Token, MachineID: a1.MachineID, Body: protocol.SystemReport{OSType: "linux", OSVersion: "Debian 12",
			OSArch: "amd64", Kernel: "6.1.0", Hostname: "web-1", CPUModel: "Xeon \"quoted\" ünïcode", CPUCores: 8, MemoryBytes: 1 << 34,
			Disks: []protocol.Disk{{Mount: "/", Filesystem: "ext4", TotalBytes: 1 << 40, UsedBytes: 1 << 39}}, RebootRequired: true,
			PackageManagers: []string{"apt", "snap"}}})
	ts.Expect(t, http.StatusOK, req{Method: "PUT", Path: "/api/v1/settings", Token: admin,
		Body: map[string]any{"command_timeout_seconds": 1800}})
	var queued struct {
		Commands []store.CommandRecord `json:"commands"`
	}
	ts.Expect(t, http.StatusCreated, req{Method: "POST", Path: "/api/v1/commands", Token: admin,
		Body: map[string]any{"agent_ids": []string{a1.ID, a2.ID, a3.ID}, "type": "collect_specs"}}).JSON(t, &queued)
	var commandIDs []string
	for _, c := range queued.Commands {
		commandIDs = append(commandIDs, c.ID)
	}
	// a1 runs its command and reports; a2's and a3's stay pending.
	var checkIn protocol.CheckInResponse
	ts.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/agents/" + a1.ID + "/commands", Token: a1.Token,
		MachineID: a1.MachineID}).JSON(t, &checkIn)
	if len(checkIn.Commands) != 1 {
		t.Fatalf("a1 got %d commands, want 1", len(checkIn.Commands))
	}
	now := time.Now().UTC()
	ts.Expect(t, http.StatusOK, req{Method: "POST", Path: "/api/v1/agents/" + a1.ID + "/commands/" + checkIn.Commands[0].ID + "/result",
		Token: a1.Token, MachineID: a1.MachineID, Body: protocol.CommandResult{Status: "succeeded", ExitCode: 0, Output: "done\n",
			StartedAt: now.Add(-time.Second), FinishedAt: now, Details: json.RawMessage(`{"cpu":{"cores":8},"z":[1,2]}`)}})
	// a3 rebound to a new machine id by the admin (audited).
	ts.Expect(t, http.StatusOK, req{Method: "POST", Path: "/api/v1/agents/" + a3.ID + "/rebind", Token: admin,
		Body: map[string]any{"machine_id": testserver.MachineID("mail-1-new")}})

	// Updates have no API in this test's reach: written the way the store
	// would, they cover a boolean, JSON arrays and objects and a BIGSERIAL.
	w, _ := ts.Server.Store().Pools()
	at := store.Now()
	if _, err := w.ExecContext(ctx, `INSERT INTO updates (id, agent_id, package_type, package_name, current_version,
		available_version, severity, cve_ids, requires_reboot, metadata, first_seen_at, last_seen_at, updated_at)
		VALUES ('u1', $1, 'apt', 'openssl', '3.0.1', '3.0.2', 'critical', '["CVE-2026-0001","CVE-2026-0002"]', 1, '{"arch":"amd64"}', $2, $2, $2),
		       ('u2', $1, 'apt', 'curl', '7.0', '7.1', 'low', '[]', 0, '{}', $2, $2, $2)`, a1.ID, at); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO update_history (update_id, from_status, to_status, actor, at)
		VALUES ('u1', '', 'pending', 'agent', $1), ('u1', 'pending', 'approved', 'admin', $1), ('u2', '', 'pending', 'agent', $1)`, at); err != nil {
		t.Fatal(err)
	}

	agentIDs := []string{a1.ID, a2.ID, a3.ID}
	before := takeSnapshot(t, ts, apiTok.Token, agentIDs, commandIDs)
	ts.Stop()

	// The tables the copy must cover, read independently from SQLite.
	var want []string
	func() {
		db, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(ts.Config.DatabaseURL, "sqlite://")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name != 'goose_db_version' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			want = append(want, n)
		}
	}()

	pg := storetest.URL(t, "postgres")
	res, err := storemigrate.Copy(ctx, ts.Config.DatabaseURL, pg, storemigrate.Options{BatchSize: 2})
	if err != nil {
		t.Fatalf("migrate-store: %v", err)
	}
	var got []string
	counts := map[string]int64{}
	for _, tc := range res.Tables {
		got = append(got, tc.Table)
		counts[tc.Table] = tc.Rows
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("copied tables %v, want every table of the store %v", got, want)
	}
	for tbl, n := range map[string]int64{"users": 1, "agents": 3, "commands": 3, "refresh_tokens": 3, "updates": 2, "update_history": 3} {
		if counts[tbl] != n {
			t.Errorf("%s: %d rows copied, want %d", tbl, counts[tbl], n)
		}
	}
	if counts["audit_log"] == 0 || counts["user_tokens"] < 2 || counts["settings"] == 0 || counts["signing_keys"] != 1 {
		t.Errorf("copied counts %v: audit_log, user_tokens, settings or signing_keys missing", counts)
	}
	if !slices.Contains(res.Sequences, "audit_log.id") || !slices.Contains(res.Sequences, "update_history.id") {
		t.Errorf("sequences reset: %v, want audit_log.id and update_history.id", res.Sequences)
	}
	if res.SchemaVersion == 0 {
		t.Error("no schema version reported")
	}

	// The real server on the PostgreSQL copy, same data directory (signing
	// key, JWT secret), without the admin bootstrap: the password must be
	// the copied one.
	cfg := ts.Config
	cfg.DatabaseURL = pg
	cfg.AdminUser, cfg.AdminPassword = "", ""
	ts2 := testserver.StartConfig(t, cfg)
	after := takeSnapshot(t, ts2, apiTok.Token, agentIDs, commandIDs)
	if !reflect.DeepEqual(before, after) {
		b, _ := json.MarshalIndent(before, "", " ")
		a, _ := json.MarshalIndent(after, "", " ")
		t.Fatalf("the API shows different data after the move:\nbefore %s\nafter %s", b, a)
	}
	admin2 := ts2.Login(t) // the same password
	ts2.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/me", Token: admin})
	// An audited write: the audit_log sequence continues past the copied ids.
	ts2.RegistrationToken(t, admin2, 1)
	var audit struct {
		Items []store.Audit `json:"items"`
	}
	ts2.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/audit?limit=1", Token: admin2}).JSON(t, &audit)
	var maxBefore int64
	for id := range before.Audit {
		maxBefore = max(maxBefore, id)
	}
	if len(audit.Items) != 1 || audit.Items[0].ID <= maxBefore {
		t.Fatalf("newest audit entry after the move: %+v, want an id above %v", audit.Items, maxBefore)
	}
	// The old agent JWT still works; a refresh token still renews (hashes
	// copied exactly), and the renewed agent receives its pending command
	// with a signature that verifies: params bytes copied exactly.
	ts2.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/agents/" + a1.ID + "/commands", Token: a1.Token, MachineID: a1.MachineID})
	var renewed protocol.RenewResponse
	ts2.Expect(t, http.StatusOK, req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: a2.MachineID,
		Body: protocol.RenewRequest{AgentID: a2.ID, RefreshToken: a2.RefreshToken}}).JSON(t, &renewed)
	ts2.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/agents/" + a2.ID + "/commands", Token: renewed.Token,
		MachineID: a2.MachineID}).JSON(t, &checkIn)
	if len(checkIn.Commands) != 1 {
		t.Fatalf("a2 got %d commands after the move, want its pending one", len(checkIn.Commands))
	}
	var keys protocol.PublicKeys
	ts2.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &keys)
	pub, err := signing.ParsePublicKey(keys.Keys[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c := checkIn.Commands[0]
	if err := signing.VerifyCommand(pub, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: c.Params,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}, c.Signature); err != nil {
		t.Fatalf("a command copied to PostgreSQL no longer verifies: %v", err)
	}
	// Types on PostgreSQL: a boolean, JSONB, and a BIGSERIAL that continues.
	pw, _ := ts2.Server.Store().Pools()
	var reboot bool
	var cve, arch string
	if err := pw.QueryRowContext(ctx, `SELECT requires_reboot, cve_ids->>1, metadata->>'arch' FROM updates WHERE id = 'u1'`).Scan(&reboot, &cve, &arch); err != nil {
		t.Fatal(err)
	}
	if !reboot || cve != "CVE-2026-0002" || arch != "amd64" {
		t.Errorf("update u1 on PostgreSQL: requires_reboot %v, cve_ids[1] %q, metadata.arch %q", reboot, cve, arch)
	}
	var histID int64
	if err := pw.QueryRowContext(ctx, `INSERT INTO update_history (update_id, to_status, at) VALUES ('u2', 'approved', now()) RETURNING id`).Scan(&histID); err != nil {
		t.Fatalf("inserting after the move: %v", err)
	}
	if histID != 4 {
		t.Errorf("the next update_history id is %d, want 4", histID)
	}

	// A second run into the same database is refused, changing nothing.
	var out, errOut bytes.Buffer
	code := servercmd.MigrateStore(ctx, []string{"--from", ts.Config.DatabaseURL, "--to", pg}, nil, &out, &errOut)
	if code != servercmd.ExitFailure || !strings.Contains(errOut.String(), "not empty") {
		t.Fatalf("a second migrate-store into a used database: exit %d, stderr %q", code, errOut.String())
	}
	onPostgres := takeSnapshot(t, ts2, apiTok.Token, agentIDs, commandIDs)
	ts2.Stop()

	// And back: PostgreSQL to a new SQLite file, through the command line.
	back := "sqlite://" + filepath.Join(t.TempDir(), "back.db")
	out.Reset()
	errOut.Reset()
	if code := servercmd.MigrateStore(ctx, []string{"--from", pg, "--to", back, "--batch-size", "3"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("migrate-store back to SQLite: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "row count matches") {
		t.Errorf("output does not report the verified counts:\n%s", out.String())
	}
	cfg.DatabaseURL = back
	ts3 := testserver.StartConfig(t, cfg)
	again := takeSnapshot(t, ts3, apiTok.Token, agentIDs, commandIDs)
	admin3 := ts3.Login(t)
	if !reflect.DeepEqual(onPostgres, again) {
		b, _ := json.MarshalIndent(onPostgres, "", " ")
		a, _ := json.MarshalIndent(again, "", " ")
		t.Fatalf("the API shows different data after moving back to SQLite:\non PostgreSQL %s\nback on SQLite %s", b, a)
	}
	ts3.Expect(t, http.StatusCreated, req{Method: "POST", Path: "/api/v1/registration-tokens", Token: admin3,
		Body: map[string]any{"seats": 1, "note": "after"}})
}

// TestMigrateStoreRefuses covers the command line's plain refusals.
func TestMigrateStoreRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := servercmd.MigrateStore(ctx, args, nil, &out, &errOut)
		return code, errOut.String()
	}
	src := "sqlite://" + filepath.Join(dir, "a.db")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "both --from and --to are required"},
		{[]string{"--from", src}, 2, "both --from and --to are required"},
		{[]string{"--from", "mysql://x", "--to", src}, 2, "--from: a database URL must start with sqlite:// or postgres://"},
		{[]string{"--from", src, "--to", src}, 2, "the same database"},
		{[]string{"--from", src, "--to", "sqlite://" + filepath.Join(dir, "b.db")}, 1, "no SQLite database at"},
		{[]string{"--from", src, "--to", "sqlite://x", "extra"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		code, msg := run(c.args...)
		if code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("migrate-store %v: exit %d, %q; want exit %d and %q", c.args, code, msg, c.code, c.want)
		}
	}
	// Nothing was created by the refusals.
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("refused runs left files: %v", m)
	}
}

// TestMigrateStoreSQLiteToSQLite needs no PostgreSQL: a copy between two
// SQLite files exercises discovery, ordering, batching and verification.
func TestMigrateStoreSQLiteToSQLite(t *testing.T) {
	ctx := context.Background()
	ts := testserver.Start(t, "sqlite")
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 3)
	a := ts.RegisterAgent(t, reg, "solo")
	ts.Expect(t, http.StatusCreated, req{Method: "POST", Path: "/api/v1/commands", Token: admin,
		Body: map[string]any{"agent_ids": []string{a.ID}, "type": "collect_specs"}})
	ts.Stop()
	dst := "sqlite://" + filepath.Join(t.TempDir(), "copy.db")
	res, err := storemigrate.Copy(ctx, ts.Config.DatabaseURL, dst, storemigrate.Options{BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows() == 0 || len(res.Sequences) != 0 {
		t.Fatalf("result %+v", res)
	}
	cfg := ts.Config
	cfg.DatabaseURL = dst
	cfg.AdminUser, cfg.AdminPassword = "", ""
	ts2 := testserver.StartConfig(t, cfg)
	admin2 := ts2.Login(t)
	var agents struct {
		Items []store.Agent `json:"items"`
	}
	ts2.Expect(t, http.StatusOK, req{Method: "GET", Path: "/api/v1/agents", Token: admin2}).JSON(t, &agents)
	if len(agents.Items) != 1 || agents.Items[0].ID != a.ID {
		t.Fatalf("agents after the copy: %+v", agents.Items)
	}
	// AUTOINCREMENT continues past the copied ids.
	ts2.RegistrationToken(t, admin2, 1)
	if _, err := storemigrate.Copy(ctx, ts.Config.DatabaseURL, dst, storemigrate.Options{}); err == nil ||
		!strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a copy into a used SQLite store: %v", err)
	}
}
