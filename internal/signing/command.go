package signing

import (
	"crypto/ed25519"
	"fmt"
	"strconv"
)

const commandPrefix = "redflag-command-v1:"

// CommandFields are the signed parts of a command sent to an agent.
//
// AgentID and ID are UUIDs and Type is snake_case, so none can contain ':'
// and the ':'-joined message is unambiguous. CommandMessage does not check
// this; it always renders the fields verbatim so it stays byte-exact with
// other implementations.
type CommandFields struct {
	AgentID string
	ID      string
	Type    string
	// Params is the exact byte string of the compact JSON params value as
	// sent on the wire; it is hashed as-is, never re-encoded.
	Params []byte
	// IssuedAt and ExpiresAt are Unix seconds.
	IssuedAt  int64
	ExpiresAt int64
}

// CommandMessage returns the exact signed text:
//
//	redflag-command-v1:{agent_id}:{id}:{type}:{sha256_hex(params)}:{issued_at}:{expires_at}
func CommandMessage(c CommandFields) []byte {
	b := make([]byte, 0, len(commandPrefix)+len(c.AgentID)+len(c.ID)+len(c.Type)+64+2*20+6)
	b = append(b, commandPrefix...)
	b = append(b, c.AgentID...)
	b = append(b, ':')
	b = append(b, c.ID...)
	b = append(b, ':')
	b = append(b, c.Type...)
	b = append(b, ':')
	b = append(b, SHA256Hex(c.Params)...)
	b = append(b, ':')
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, c.ExpiresAt, 10)
	return b
}

// SignCommand returns the base64 Ed25519 signature of CommandMessage(c).
// It panics if k is nil or has no valid private key.
func SignCommand(k *Key, c CommandFields) string {
	return sign(k, CommandMessage(c))
}

// VerifyCommand checks sigB64 against CommandMessage(c). It returns an error
// wrapping ErrBadKey, ErrMalformedSignature or ErrBadSignature.
//
// It checks only the signature: callers must still enforce IssuedAt/ExpiresAt
// against their clock and that AgentID is their own id.
func VerifyCommand(pub ed25519.PublicKey, c CommandFields, sigB64 string) error {
	what := fmt.Sprintf("command %q (type %q) for agent %q", c.ID, c.Type, c.AgentID)
	return verify(pub, CommandMessage(c), sigB64, what)
}
