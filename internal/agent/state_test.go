package agent

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

func openState(t *testing.T, dir string, now time.Time) *State {
	t.Helper()
	s, err := OpenState(dir, now, DefaultExecutedRetention)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStateExecutedSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "redflag")
	s := openState(t, dir, t0)
	for _, id := range []string{"a", "b", "weird id:with/chars\n"} {
		if err := s.MarkExecuted(id, t0, t0.Add(time.Hour).Unix()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s2 := openState(t, dir, t0.Add(time.Minute))
	for _, id := range []string{"a", "b", "weird id:with/chars\n"} {
		if !s2.IsExecuted(id) {
			t.Errorf("%q not executed after reopen", id)
		}
	}
	if s2.IsExecuted("c") {
		t.Error("c was never executed")
	}
	if runtime.GOOS != "windows" {
		st, _ := os.Stat(dir)
		if st.Mode().Perm() != 0o700 {
			t.Errorf("state dir mode %04o, want 0700", st.Mode().Perm())
		}
	}
}

func TestStateTornLastLine(t *testing.T) {
	dir := t.TempDir()
	s := openState(t, dir, t0)
	if err := s.MarkExecuted("whole", t0, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash in the middle of an append leaves half a line.
	f, err := os.OpenFile(filepath.Join(dir, executedFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"torn","t":17`)
	f.Close()
	s2 := openState(t, dir, t0)
	if !s2.IsExecuted("whole") || s2.IsExecuted("torn") {
		t.Fatalf("after a torn write: whole=%v torn=%v", s2.IsExecuted("whole"), s2.IsExecuted("torn"))
	}
	// The log was compacted, so new appends start on a fresh line.
	if err := s2.MarkExecuted("next", t0, 0); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3 := openState(t, dir, t0)
	if !s3.IsExecuted("next") {
		t.Error("an id appended after a torn write was lost")
	}
}

func TestStatePruneByAge(t *testing.T) {
	dir := t.TempDir()
	s := openState(t, dir, t0)
	old := t0.Add(-40 * 24 * time.Hour)
	mustMark := func(id string, at time.Time, exp int64) {
		if err := s.MarkExecuted(id, at, exp); err != nil {
			t.Fatal(err)
		}
	}
	mustMark("old", old, old.Add(time.Hour).Unix())
	mustMark("old-long-lived", old, t0.Add(24*time.Hour).Unix()) // still valid: its replay window is open
	mustMark("old-with-result", old, old.Add(time.Hour).Unix())
	mustMark("recent", t0.Add(-time.Hour), t0.Unix())
	if err := s.SavePending(PendingResult{CommandID: "old-with-result", CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	if err := s.Prune(t0.Add(-DefaultExecutedRetention)); err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{"old": false, "old-long-lived": true, "old-with-result": true, "recent": true}
	for id, want := range tests {
		if s.IsExecutedLogged(id) != want {
			t.Errorf("after prune, %s kept = %v, want %v", id, !want, want)
		}
	}
	s.Close()
	s2 := openState(t, dir, t0)
	for id, want := range tests {
		if s2.IsExecutedLogged(id) != want {
			t.Errorf("after reopen, %s kept = %v, want %v", id, !want, want)
		}
	}
}

func TestStatePendingLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := openState(t, dir, t0)
	ids := []string{"c1", "c2", "strange/../id"}
	for i, id := range ids {
		p := PendingResult{CommandID: id, Type: protocol.CmdCollectSpecs, CreatedAt: t0.Add(time.Duration(i) * time.Second),
			Result: protocol.CommandResult{Status: protocol.StateSucceeded, Output: "ok " + id}}
		if err := s.SavePending(p); err != nil {
			t.Fatal(err)
		}
	}
	// Each result is its own file, inside results/, mode 0600.
	ents, _ := os.ReadDir(filepath.Join(dir, resultsDir))
	if len(ents) != 3 {
		t.Fatalf("%d files in results/, want 3", len(ents))
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), "..") || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("unsafe or leftover file name %q", e.Name())
		}
		if info, _ := e.Info(); runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o", e.Name(), info.Mode().Perm())
		}
	}
	s.Close()

	s2 := openState(t, dir, t0)
	ps, err := s2.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[0].CommandID != "c1" || ps[2].CommandID != "strange/../id" || ps[1].Result.Output != "ok c2" {
		t.Fatalf("pending after reopen: %+v", ps)
	}
	if !s2.IsExecuted("c2") {
		t.Error("a command with a result on file must count as executed")
	}
	if err := s2.DeletePending("c1"); err != nil {
		t.Fatal(err)
	}
	if err := s2.RejectPending("c2"); err != nil {
		t.Fatal(err)
	}
	if n := s2.PendingCount(); n != 1 {
		t.Fatalf("PendingCount = %d, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, rejectedDir, "c2.json")); err != nil {
		t.Errorf("rejected result not kept: %v", err)
	}
	s2.Close()
	s3 := openState(t, dir, t0)
	if ps, _ := s3.Pending(); len(ps) != 1 || ps[0].CommandID != "strange/../id" {
		t.Fatalf("pending after delete and reopen: %+v", ps)
	}
}

func TestStateUnreadablePendingIsSetAside(t *testing.T) {
	dir := t.TempDir()
	s := openState(t, dir, t0)
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, resultsDir, "junk.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openState(t, dir, t0)
	if n := s2.PendingCount(); n != 0 {
		t.Fatalf("PendingCount = %d", n)
	}
	if _, err := os.Stat(filepath.Join(dir, rejectedDir, "junk.json.unreadable")); err != nil {
		t.Errorf("damaged file not set aside: %v", err)
	}
}

// TestStateRecoverInterrupted: a kill -9 while a command ran leaves its
// placeholder; after restart it is reported failed "interrupted" and the id
// stays executed, so the command never runs again.
func TestStateRecoverInterrupted(t *testing.T) {
	dir := t.TempDir()
	s := openState(t, dir, t0)
	placeholder := PendingResult{CommandID: "running-1", Type: protocol.CmdReboot, Running: true, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour).Unix(),
		Result: toResult(Outcome{ExitCode: 1, Output: interruptedOutput}, t0, t0)}
	if err := s.SavePending(placeholder); err != nil {
		t.Fatal(err)
	}
	// Crash before MarkExecuted: the id is only in results/.
	s.Close()
	s2 := openState(t, dir, t0.Add(time.Minute))
	turned, err := s2.Recover(t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(turned) != 1 || turned[0] != "running-1" {
		t.Fatalf("Recover turned %v", turned)
	}
	ps, _ := s2.Pending()
	if len(ps) != 1 || ps[0].Running || ps[0].Result.Status != protocol.StateFailed || !strings.Contains(ps[0].Result.Output, "interrupted") ||
		!ps[0].Result.FinishedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("recovered result %+v", ps)
	}
	if !s2.IsExecutedLogged("running-1") {
		t.Error("the interrupted command was not recorded as executed")
	}
	// Even after its result is delivered and deleted, it stays executed.
	_ = s2.DeletePending("running-1")
	s2.Close()
	s3 := openState(t, dir, t0.Add(2*time.Minute))
	if !s3.IsExecuted("running-1") {
		t.Error("the interrupted command could run again after its result was delivered")
	}
}

func TestStatePendingAcksSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openState(t, dir, t0)
	ids := []string{"0190a3b4-0000-7000-8000-000000000001", "0190a3b4-0000-7000-8000-000000000002", "0190a3b4-0000-7000-8000-000000000003"}
	for _, id := range append(ids, ids[0], "not-a-uuid", "") {
		if err := s.AddAck(id); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Acks(100); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("acks %v, want %v (deduplicated, command ids only, oldest first)", got, ids)
	}
	if got := s.Acks(2); len(got) != 2 || got[0] != ids[0] {
		t.Fatalf("Acks(2) = %v", got)
	}
	if info, err := os.Stat(filepath.Join(dir, acksFile)); err != nil || (runtime.GOOS != "windows" && info.Mode().Perm() != 0o600) {
		t.Fatalf("acks file: %v %v", info, err)
	}
	s.Close()

	// A restart keeps them; only a delivered check-in removes them.
	s2 := openState(t, dir, t0)
	if got := s2.Acks(100); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("after reopen acks %v, want %v", got, ids)
	}
	if err := s2.DeleteAcks(ids[:2]); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3 := openState(t, dir, t0)
	if got := s3.Acks(100); len(got) != 1 || got[0] != ids[2] || s3.AckCount() != 1 {
		t.Fatalf("after delete and reopen acks %v, want [%s]", got, ids[2])
	}
	s3.Close()

	// A damaged file is set aside, not fatal.
	if err := os.WriteFile(filepath.Join(dir, acksFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s4 := openState(t, dir, t0)
	if s4.AckCount() != 0 {
		t.Fatalf("acks from a damaged file: %v", s4.Acks(100))
	}
	if _, err := os.Stat(filepath.Join(dir, rejectedDir, acksFile+".unreadable")); err != nil {
		t.Errorf("the damaged acks file was not set aside: %v", err)
	}
}
