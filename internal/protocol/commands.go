package protocol

import (
	"encoding/json"
	"time"
)

// Command types (SPEC §6).
const (
	CmdScanUpdates         = "scan_updates"
	CmdCollectSpecs        = "collect_specs"
	CmdInstallUpdates      = "install_updates"
	CmdConfirmDependencies = "confirm_dependencies"
	CmdRollbackUpdate      = "rollback_update"
	CmdUpdateAgent         = "update_agent"
	CmdEnableHeartbeat     = "enable_heartbeat"
	CmdDisableHeartbeat    = "disable_heartbeat"
	CmdReboot              = "reboot"
	CmdRotateKey           = "rotate_key"
)

// CommandTypes lists every known command type.
var CommandTypes = []string{CmdScanUpdates, CmdCollectSpecs, CmdInstallUpdates, CmdConfirmDependencies,
	CmdRollbackUpdate, CmdUpdateAgent, CmdEnableHeartbeat, CmdDisableHeartbeat, CmdReboot, CmdRotateKey}

// Command states (SPEC §6).
const (
	StatePending   = "pending"
	StateSent      = "sent"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateTimedOut  = "timed_out"
	StateExpired   = "expired"
	StateCancelled = "cancelled"
)

// MaxResultOutput bounds the output an agent sends with a result.
const MaxResultOutput = 64 << 10

// CommandResult is the body of POST /api/v1/agents/{id}/commands/{command_id}/result.
// Times are RFC 3339.
type CommandResult struct {
	Status     string          `json:"status"`
	ExitCode   int             `json:"exit_code"`
	Output     string          `json:"output"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	Details    json.RawMessage `json:"details,omitempty"`
}

// HeartbeatParams are the params of enable_heartbeat.
type HeartbeatParams struct {
	IntervalSeconds int `json:"interval_seconds"`
	DurationSeconds int `json:"duration_seconds"`
}

// RebootParams are the params of reboot.
type RebootParams struct {
	DelaySeconds int `json:"delay_seconds"`
}

// RotateKeyParams are the params of rotate_key: the new key, delivered in a
// command signed by a key the agent already trusts.
type RotateKeyParams struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
	// RetireKeyID, when set, is the key the agent may stop trusting after NotAfter (Unix seconds).
	RetireKeyID string `json:"retire_key_id,omitempty"`
	NotAfter    int64  `json:"not_after,omitempty"`
}

// ScanUpdatesParams are the params of scan_updates.
type ScanUpdatesParams struct {
	Scanners []string `json:"scanners,omitempty"`
}

// UpdateAgentParams are the params of update_agent: the agent downloads the
// binary at URL (absolute, or a path resolved against the agent's server
// URL), checks its SHA-256 and the signature (base64, by key KeyID) over
// "redflag-agent-v1:{version}:{os}:{arch}:{sha256}" (SPEC §5) for its own
// os and arch, and refuses a version older than its own unless Rollback.
type UpdateAgentParams struct {
	Version   string `json:"version"`
	URL       string `json:"url"`
	SHA256    string `json:"sha256"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
	Rollback  bool   `json:"rollback,omitempty"`
}
