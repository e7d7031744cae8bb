package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// DefaultExecutedRetention is how long executed command ids are kept. A
// command expires long before that, so an older replay is refused as
// expired anyway.
const DefaultExecutedRetention = 30 * 24 * time.Hour

// State is the agent's persisted state directory (SPEC §8):
//
//	executed.log       one JSON line {"id","t"} per command the agent started
//	results/<id>.json  one PendingResult per result not yet acknowledged
//	acks.json          pending acknowledgements: ids of commands received
//	                   (run or refused) that no check-in has yet carried
//	                   to the server with success, oldest first
//	rejected/          results the server refused for good, kept for inspection
//
// Every write is fsynced before the call returns, so what State reports
// survives a crash or kill -9. State is safe for concurrent use; two agent
// processes must not share one directory.
type State struct {
	dir string

	mu       sync.Mutex
	executed map[string]executedEntry
	log      *os.File // executed.log, opened for appending
	pending  map[string]bool
	acks     []string // pending acknowledgements, oldest first (acks.json)
}

// PendingResult is a command result waiting for the server's
// acknowledgement.
type PendingResult struct {
	CommandID string `json:"command_id"`
	Type      string `json:"type"`
	// Running marks the placeholder written before a command starts: it
	// holds a failed "interrupted" result that stands if the agent dies
	// before the command finishes. It is never sent while its command runs.
	Running   bool      `json:"running,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is the command's expires_at (Unix seconds), 0 if unknown.
	ExpiresAt int64                  `json:"expires_at,omitempty"`
	Result    protocol.CommandResult `json:"result"`
}

const (
	executedFile = "executed.log"
	acksFile     = "acks.json"
	// maxPendingAcks bounds acks.json; past it the oldest are dropped (a
	// command never acknowledged is at worst offered again and then
	// refused as a replay).
	maxPendingAcks = 10000
	resultsDir     = "results"
	rejectedDir    = "rejected"
)

// OpenState opens (creating, mode 0700) the state directory, loads the
// executed ids and the pending results, and drops executed ids older than
// retention (relative to now). A partial last line of executed.log, left by
// a crash mid-write, is discarded.
func OpenState(dir string, now time.Time, retention time.Duration) (*State, error) {
	if dir == "" {
		return nil, errors.New("the state directory is not set")
	}
	for _, d := range []string{dir, filepath.Join(dir, resultsDir), filepath.Join(dir, rejectedDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating the state directory: %w", err)
		}
	}
	s := &State{dir: dir, executed: map[string]executedEntry{}, pending: map[string]bool{}}
	if err := s.loadExecuted(); err != nil {
		return nil, err
	}
	if err := s.loadPendingIndex(); err != nil {
		return nil, err
	}
	if err := s.loadAcks(); err != nil {
		return nil, err
	}
	if err := s.compact(now.Add(-retention)); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the state directory.
func (s *State) Dir() string { return s.dir }

// Close closes the executed log.
func (s *State) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return nil
	}
	err := s.log.Close()
	s.log = nil
	return err
}

type executedEntry struct {
	ID string `json:"id"`
	// T is when the command started (Unix seconds).
	T int64 `json:"t"`
	// Exp is the command's expires_at: an entry is kept at least until the
	// command could no longer pass the expiry check, so pruning never
	// reopens a replay window.
	Exp int64 `json:"exp,omitempty"`
}

func (s *State) loadExecuted() error {
	b, err := os.ReadFile(filepath.Join(s.dir, executedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading executed command ids: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var e executedEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.ID == "" {
			continue // a torn write; the command behind it never started
		}
		if old, ok := s.executed[e.ID]; !ok || e.T > old.T {
			s.executed[e.ID] = e
		}
	}
	return nil
}

func (s *State) loadPendingIndex() error {
	ps, err := s.readPending()
	if err != nil {
		return err
	}
	for _, p := range ps {
		s.pending[p.CommandID] = true
	}
	return nil
}

// compact rewrites executed.log atomically without the entries that
// started before cutoff and whose command has expired (with the clock skew
// allowance) by then, and reopens it for appending. Ids with a pending
// result are kept whatever their age. Set-aside results older than cutoff
// are deleted.
func (s *State) compact(cutoff time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := cutoff.Unix()
	entries := make([]executedEntry, 0, len(s.executed))
	for id, e := range s.executed {
		if e.T < c && e.Exp+int64(ClockSkew/time.Second) < c && !s.pending[id] {
			delete(s.executed, id)
			continue
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b executedEntry) int {
		if a.T != b.T {
			return int(a.T - b.T)
		}
		return strings.Compare(a.ID, b.ID)
	})
	var buf bytes.Buffer
	for _, e := range entries {
		line, _ := json.Marshal(e)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	s.pruneRejected(cutoff)
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
	path := filepath.Join(s.dir, executedFile)
	if err := writeFileAtomic(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("rewriting executed command ids: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening executed command ids: %w", err)
	}
	s.log = f
	return nil
}

// Prune drops executed ids older than cutoff.
func (s *State) Prune(cutoff time.Time) error { return s.compact(cutoff) }

// IsExecuted reports whether the command id was started before (or has a
// result on file).
func (s *State) IsExecuted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.executed[id]
	return ok || s.pending[id]
}

// ExecutedCount returns the number of remembered executed ids.
func (s *State) ExecutedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.executed)
}

// MarkExecuted records id (a command started at at, expiring at expiresAt
// in Unix seconds) as executed, durably, before it returns.
func (s *State) MarkExecuted(id string, at time.Time, expiresAt int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return errors.New("the state is closed")
	}
	e := executedEntry{ID: id, T: at.Unix(), Exp: expiresAt}
	line, _ := json.Marshal(e)
	if _, err := s.log.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("recording executed command %s: %w", id, err)
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("recording executed command %s: %w", id, err)
	}
	s.executed[id] = e
	return nil
}

var safeFileID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,100}$`)

// resultFileName maps a command id to a file name; ids that are not plain
// (they come from the network) are hashed.
func resultFileName(id string) string {
	if safeFileID.MatchString(id) {
		return id + ".json"
	}
	sum := sha256.Sum256([]byte(id))
	return "h-" + hex.EncodeToString(sum[:16]) + ".json"
}

// SavePending writes (or replaces) the pending result of p.CommandID
// atomically and durably.
func (s *State) SavePending(p PendingResult) error {
	if p.CommandID == "" {
		return errors.New("a pending result needs a command id")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the result of %s: %w", p.CommandID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := writeFileAtomic(filepath.Join(s.dir, resultsDir, resultFileName(p.CommandID)), b, 0o600); err != nil {
		return fmt.Errorf("saving the result of %s: %w", p.CommandID, err)
	}
	s.pending[p.CommandID] = true
	return nil
}

// HasPending reports whether a result for id is on file.
func (s *State) HasPending(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[id]
}

// PendingCount returns the number of results on file.
func (s *State) PendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Pending returns the results on file, oldest first.
func (s *State) Pending() ([]PendingResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readPending()
}

func (s *State) readPending() ([]PendingResult, error) {
	dir := filepath.Join(s.dir, resultsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing pending results: %w", err)
	}
	var out []PendingResult
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading pending result %s: %w", name, err)
		}
		var p PendingResult
		if err := json.Unmarshal(b, &p); err != nil || p.CommandID == "" || resultFileName(p.CommandID) != name {
			// Written atomically, so this is not a torn write but foreign
			// or damaged data: set it aside rather than fail forever.
			_ = os.Rename(filepath.Join(dir, name), filepath.Join(s.dir, rejectedDir, name+".unreadable"))
			continue
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b PendingResult) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// DeletePending removes the result of id once the server acknowledged it.
func (s *State) DeletePending(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Join(s.dir, resultsDir)
	if err := os.Remove(filepath.Join(dir, resultFileName(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the acknowledged result of %s: %w", id, err)
	}
	delete(s.pending, id)
	return syncDir(dir)
}

// RejectPending moves the result of id out of the send queue into
// rejected/, for a result the server refused for good.
func (s *State) RejectPending(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := resultFileName(id)
	if err := os.Rename(filepath.Join(s.dir, resultsDir, name), filepath.Join(s.dir, rejectedDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("setting aside the result of %s: %w", id, err)
	}
	delete(s.pending, id)
	return syncDir(filepath.Join(s.dir, resultsDir))
}

// Recover turns every Running placeholder into its final "interrupted"
// result, finished at now, and makes sure every command with a result on
// file counts as executed. It returns the ids it turned. Call it once at
// start, before any command runs.
func (s *State) Recover(now time.Time) ([]string, error) {
	ps, err := s.Pending()
	if err != nil {
		return nil, err
	}
	var turned []string
	for _, p := range ps {
		if !s.IsExecutedLogged(p.CommandID) {
			if err := s.MarkExecuted(p.CommandID, p.CreatedAt, p.ExpiresAt); err != nil {
				return nil, err
			}
		}
		if !p.Running {
			continue
		}
		p.Running = false
		p.Result.FinishedAt = now.UTC()
		if err := s.SavePending(p); err != nil {
			return nil, err
		}
		turned = append(turned, p.CommandID)
	}
	return turned, nil
}

// IsExecutedLogged reports whether id is in the executed log itself.
func (s *State) IsExecutedLogged(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.executed[id]
	return ok
}

// pruneRejected deletes set-aside results last changed before cutoff.
// Called with s.mu held.
func (s *State) pruneRejected(cutoff time.Time) {
	dir := filepath.Join(s.dir, rejectedDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func (s *State) loadAcks() error {
	path := filepath.Join(s.dir, acksFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading pending acknowledgements: %w", err)
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		// Written atomically, so damaged rather than torn: set it aside.
		// Losing acknowledgements costs at most a redelivery, refused as a
		// replay.
		_ = os.Rename(path, filepath.Join(s.dir, rejectedDir, acksFile+".unreadable"))
		return nil
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if protocol.ValidCommandID(id) && !seen[id] {
			seen[id] = true
			s.acks = append(s.acks, id)
		}
	}
	return nil
}

// saveAcks writes acks.json atomically and durably. Called with s.mu held.
func (s *State) saveAcks(ids []string) error {
	if ids == nil {
		ids = []string{}
	}
	b, _ := json.Marshal(ids)
	if err := writeFileAtomic(filepath.Join(s.dir, acksFile), b, 0o600); err != nil {
		return fmt.Errorf("saving pending acknowledgements: %w", err)
	}
	s.acks = ids
	return nil
}

// AddAck records, durably, that the command id was received, so the next
// check-in acknowledges it. Ids that are not command ids (UUIDs) are
// ignored: the server would refuse the check-in carrying them.
func (s *State) AddAck(id string) error {
	if !protocol.ValidCommandID(id) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.acks, id) {
		return nil
	}
	ids := append(slices.Clone(s.acks), id)
	if len(ids) > maxPendingAcks {
		ids = ids[len(ids)-maxPendingAcks:]
	}
	return s.saveAcks(ids)
}

// Acks returns up to n pending acknowledgements, oldest first.
func (s *State) Acks(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acks[:min(n, len(s.acks))])
}

// AckCount returns the number of pending acknowledgements.
func (s *State) AckCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks)
}

// DeleteAcks drops acknowledgements a check-in delivered (the server
// answered it 200).
func (s *State) DeleteAcks(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
	}
	keep := make([]string, 0, len(s.acks))
	for _, id := range s.acks {
		if !gone[id] {
			keep = append(keep, id)
		}
	}
	if len(keep) == len(s.acks) {
		return nil
	}
	return s.saveAcks(keep)
}
