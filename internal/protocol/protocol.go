// Package protocol holds the wire types of the agent protocol (SPEC §4–§7),
// shared by the server, the agent and the CLI. It imports nothing of ours so
// the agent binary stays small.
package protocol

import (
	"encoding/json"
	"regexp"
)

// Header names used by agents.
const (
	HeaderMachineID    = "X-Machine-ID"
	HeaderAgentVersion = "X-Agent-Version"
	HeaderRequestID    = "X-Request-ID"
)

// Operating systems an agent may run on.
const (
	OSLinux   = "linux"
	OSWindows = "windows"
	OSDarwin  = "darwin"
)

var machineIDRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidMachineID reports whether s has the form SPEC §4 requires:
// 64 lowercase hex characters (a SHA-256).
func ValidMachineID(s string) bool { return machineIDRe.MatchString(s) }

// ErrorBody is the single error shape of every HTTP error (SPEC §3).
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner part of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// PublicKey is one entry of GET /api/v1/public-keys.
type PublicKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"`
	Status    string `json:"status"`
	NotAfter  *int64 `json:"not_after"`
}

// PublicKeys is the body of GET /api/v1/public-keys.
type PublicKeys struct {
	Keys []PublicKey `json:"keys"`
}

// RegisterRequest is the body of POST /api/v1/agents/register.
type RegisterRequest struct {
	RegistrationToken string `json:"registration_token"`
	Hostname          string `json:"hostname"`
	OSType            string `json:"os_type"`
	OSVersion         string `json:"os_version"`
	OSArch            string `json:"os_arch"`
	AgentVersion      string `json:"agent_version"`
	MachineID         string `json:"machine_id"`
}

// RegisterResponse is the 201 body of POST /api/v1/agents/register.
type RegisterResponse struct {
	AgentID                string      `json:"agent_id"`
	Token                  string      `json:"token"`
	RefreshToken           string      `json:"refresh_token"`
	CheckInIntervalSeconds int         `json:"check_in_interval_seconds"`
	PublicKeys             []PublicKey `json:"public_keys"`
}

// RenewRequest is the body of POST /api/v1/agents/renew.
type RenewRequest struct {
	AgentID      string `json:"agent_id"`
	RefreshToken string `json:"refresh_token"`
}

// RenewResponse is the 200 body of POST /api/v1/agents/renew.
type RenewResponse struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
}

// SignedCommand is a command as delivered to an agent (SPEC §5). Params is
// kept as raw bytes because the signature covers their exact text.
type SignedCommand struct {
	ID        string          `json:"id"`
	AgentID   string          `json:"agent_id"`
	Type      string          `json:"type"`
	Params    json.RawMessage `json:"params"`
	IssuedAt  int64           `json:"issued_at"`
	ExpiresAt int64           `json:"expires_at"`
	KeyID     string          `json:"key_id"`
	Signature string          `json:"signature"`
}

// CheckInResponse is the body of GET /api/v1/agents/{id}/commands.
type CheckInResponse struct {
	Commands               []SignedCommand `json:"commands"`
	CheckInIntervalSeconds int             `json:"check_in_interval_seconds"`
}

// SystemReport is the body of POST /api/v1/agents/{id}/reports/system.
type SystemReport struct {
	OSType          string   `json:"os_type"`
	OSVersion       string   `json:"os_version"`
	OSArch          string   `json:"os_arch"`
	Kernel          string   `json:"kernel"`
	Hostname        string   `json:"hostname"`
	CPUModel        string   `json:"cpu_model"`
	CPUCores        int      `json:"cpu_cores"`
	MemoryBytes     int64    `json:"memory_bytes"`
	UptimeSeconds   int64    `json:"uptime_seconds"`
	Disks           []Disk   `json:"disks"`
	RebootRequired  bool     `json:"reboot_required"`
	PackageManagers []string `json:"package_managers"`
}

// Disk is one mounted filesystem in a SystemReport.
type Disk struct {
	Mount      string `json:"mount"`
	Filesystem string `json:"filesystem"`
	TotalBytes int64  `json:"total_bytes"`
	UsedBytes  int64  `json:"used_bytes"`
}

// Info is the body of GET /api/v1/info.
type Info struct {
	Version         string `json:"version"`
	Commit          string `json:"commit"`
	BuildDate       string `json:"build_date"`
	SchemaVersion   int64  `json:"schema_version"`
	MinAgentVersion string `json:"min_agent_version"`
}

// QueryAck is the check-in's query parameter carrying acknowledgements:
// the ids of commands the agent received in earlier check-in answers,
// comma-separated, at most MaxAcksPerCheckIn of them. A command that is
// acknowledged is never handed out again; one sent but never acknowledged
// is offered again after the server's redelivery delay.
const QueryAck = "ack"

// MaxAcksPerCheckIn bounds the ids of one check-in's ack parameter; an
// agent with more sends the rest on its next check-ins.
const MaxAcksPerCheckIn = 100

var commandIDRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ValidCommandID reports whether s is a command id as the server makes
// them: a UUID in its canonical 36-character text form.
func ValidCommandID(s string) bool { return commandIDRe.MatchString(s) }
