package agent

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

// ClockSkew is the allowance on expires_at (SPEC §5).
const ClockSkew = 5 * time.Minute

// Refusal codes, reported in the failed result's details.
const (
	RefuseMalformed    = "malformed"
	RefuseUnknownKey   = "unknown_key"
	RefuseKeyRetired   = "key_retired"
	RefuseBadSignature = "bad_signature"
	RefuseWrongAgent   = "wrong_agent"
	RefuseExpired      = "expired"
	RefuseReplayed     = "replayed"
)

// RefusedError is why a command was not run.
type RefusedError struct {
	Code   string
	Reason string
}

func (e *RefusedError) Error() string { return "command refused: " + e.Reason }

func refuse(code, format string, args ...any) *RefusedError {
	return &RefusedError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Verify applies SPEC §5: the command may run only if its signature verifies
// under a pinned key with its key_id, it is addressed to agentID, now is
// before expires_at plus ClockSkew, and its id is not in the executed list.
// It returns nil or a *RefusedError naming the first rule broken.
func Verify(cmd protocol.SignedCommand, agentID string, keys []PinnedKey, executed func(id string) bool, now time.Time) error {
	if cmd.ID == "" || cmd.Type == "" || cmd.KeyID == "" || cmd.Signature == "" {
		return refuse(RefuseMalformed, "the command lacks an id, type, key_id or signature")
	}
	var key *PinnedKey
	for i := range keys {
		if keys[i].KeyID == cmd.KeyID {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.KeyID
		}
		return refuse(RefuseUnknownKey, "the command is signed with key %q, which this agent has not pinned (it trusts %s)",
			cmd.KeyID, strings.Join(ids, ", "))
	}
	if key.NotAfter > 0 && now.Unix() > key.NotAfter {
		return refuse(RefuseKeyRetired, "the command is signed with key %s, which this agent stopped trusting at %s",
			key.KeyID, time.Unix(key.NotAfter, 0).UTC().Format(time.RFC3339))
	}
	pub, err := signing.ParsePublicKey(key.PublicKey)
	if err != nil {
		return refuse(RefuseUnknownKey, "the pinned key %s cannot be used: %v", key.KeyID, err)
	}
	fields := signing.CommandFields{AgentID: cmd.AgentID, ID: cmd.ID, Type: cmd.Type, Params: cmd.Params,
		IssuedAt: cmd.IssuedAt, ExpiresAt: cmd.ExpiresAt}
	if err := signing.VerifyCommand(pub, fields, cmd.Signature); err != nil {
		if errors.Is(err, signing.ErrMalformedSignature) {
			return refuse(RefuseBadSignature, "the signature is malformed: %v", err)
		}
		return refuse(RefuseBadSignature, "the signature does not verify under pinned key %s: the command was modified or not signed by the server", key.KeyID)
	}
	if cmd.AgentID != agentID {
		return refuse(RefuseWrongAgent, "the command is for agent %q, not this agent (%s)", cmd.AgentID, agentID)
	}
	if deadline := time.Unix(cmd.ExpiresAt, 0).Add(ClockSkew); !now.Before(deadline) {
		return refuse(RefuseExpired, "the command expired at %s (this agent's clock reads %s, %s of skew allowed)",
			time.Unix(cmd.ExpiresAt, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ClockSkew)
	}
	if executed(cmd.ID) {
		return refuse(RefuseReplayed, "command %s was already executed by this agent; a replay is never run again", cmd.ID)
	}
	return nil
}
