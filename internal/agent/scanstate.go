package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ScanRecord is what the agent remembers of one scanner between runs.
type ScanRecord struct {
	// LastScanAt is when the scanner last ran (successfully or not); the
	// schedule counts the next run from it, so a restart does not rescan.
	LastScanAt time.Time `json:"last_scan_at"`
	// ReportedHash is the hash of the last full report the server
	// accepted; a scan with the same hash is sent as the hash only.
	ReportedHash string `json:"reported_hash,omitempty"`
}

const scansFile = "scans.json"

// maxScansFile bounds scans.json (one small record per package type).
const maxScansFile = 64 << 10

// ScanRecords returns the persisted scan records by scanner name. A
// missing or unreadable file is an empty map: the worst case is a full
// report and an earlier scan than planned.
func (s *State) ScanRecords() map[string]ScanRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readScans()
}

func (s *State) readScans() map[string]ScanRecord {
	out := map[string]ScanRecord{}
	p := filepath.Join(s.dir, scansFile)
	st, err := os.Stat(p)
	if err != nil || st.Size() > maxScansFile {
		return out
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return out
	}
	if json.Unmarshal(b, &out) != nil {
		return map[string]ScanRecord{}
	}
	return out
}

// SaveScanRecord stores one scanner's record (atomically, 0600).
func (s *State) SaveScanRecord(name string, r ScanRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.readScans()
	all[name] = r
	b, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("encoding scan records: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, scansFile), b, 0o600); err != nil {
		return fmt.Errorf("saving scan records: %w", err)
	}
	return nil
}
