package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/version"
)

// RegisterOptions are the inputs of Register.
type RegisterOptions struct {
	ServerURL         string
	RegistrationToken string
	// ConfigPath is where the new config is written (0600).
	ConfigPath string
	// MachineID is this machine's id (MachineID()).
	MachineID string
	// Host describes the machine; zero fields are filled by CollectHostInfo.
	Host HostInfo
	// Version is this agent's version; default version.Version.
	Version string
	// HTTPClient, when set, carries the request (tests, custom CAs).
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Register enrols this machine with the server (SPEC §4), pins the server
// keys of the answer (trust on first use, SPEC §5) and writes the config.
// When a valid config already exists at ConfigPath, its interval and
// backoff overrides are kept.
func Register(ctx context.Context, o RegisterOptions) (*Config, error) {
	if o.RegistrationToken == "" {
		return nil, errors.New("a registration token is required (--token); an admin creates one in the dashboard or with `redflag registration-tokens create`")
	}
	if err := protocol.CheckText(o.RegistrationToken, 256, false); err != nil {
		return nil, fmt.Errorf("the registration token is not acceptable: %v", err)
	}
	if !protocol.ValidMachineID(o.MachineID) {
		return nil, errors.New("the machine id must be 64 lowercase hexadecimal characters")
	}
	if o.ConfigPath == "" {
		return nil, errors.New("the config path is empty")
	}
	if o.Version == "" {
		o.Version = version.Version
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := CollectHostInfo()
	if o.Host.Hostname == "" {
		o.Host.Hostname = h.Hostname
	}
	if o.Host.OSType == "" {
		o.Host.OSType = h.OSType
	}
	if o.Host.OSVersion == "" {
		o.Host.OSVersion = h.OSVersion
	}
	if o.Host.OSArch == "" {
		o.Host.OSArch = h.OSArch
	}
	if o.Host.Hostname == "" {
		return nil, errors.New("this machine's hostname could not be read")
	}

	api, err := client.New(o.ServerURL, client.Options{HTTPClient: o.HTTPClient, MachineID: o.MachineID, AgentVersion: o.Version})
	if err != nil {
		return nil, err
	}
	resp, err := api.Register(ctx, protocol.RegisterRequest{RegistrationToken: o.RegistrationToken, Hostname: o.Host.Hostname,
		OSType: o.Host.OSType, OSVersion: o.Host.OSVersion, OSArch: o.Host.OSArch, AgentVersion: o.Version, MachineID: o.MachineID})
	if err != nil {
		if client.StatusCode(err) == http.StatusUnauthorized {
			return nil, fmt.Errorf("the server refused the registration token (unknown, expired, revoked or out of seats); ask an admin for a new one: %w", err)
		}
		return nil, fmt.Errorf("registering with %s failed: %w", api.ServerURL(), err)
	}
	keys, err := pinKeys(resp.PublicKeys)
	if err != nil {
		return nil, fmt.Errorf("the server's registration answer: %w", err)
	}
	cfg := &Config{ServerURL: api.ServerURL(), AgentID: resp.AgentID, Token: resp.Token, RefreshToken: resp.RefreshToken,
		TokenExpiresAt: tokenExpiry(resp.Token, o.Now()), MachineID: o.MachineID, PinnedKeys: keys}
	if resp.CheckInIntervalSeconds > 0 && resp.CheckInIntervalSeconds <= maxCheckInIntervalLimit {
		cfg.CheckInIntervalSeconds = resp.CheckInIntervalSeconds
	}
	if old, err := LoadConfig(o.ConfigPath); err == nil {
		cfg.PollIntervalSeconds, cfg.BackoffMinSeconds, cfg.BackoffMaxSeconds = old.PollIntervalSeconds, old.BackoffMinSeconds, old.BackoffMaxSeconds
		cfg.LongPollSeconds = old.clone().LongPollSeconds
		cfg.UpgradeWatchdogSeconds = old.UpgradeWatchdogSeconds
	}
	if err := SaveConfig(o.ConfigPath, cfg); err != nil {
		return nil, fmt.Errorf("the agent is registered (id %s) but its config could not be written; fix the problem and register again: %w", resp.AgentID, err)
	}
	return cfg, nil
}

// pinKeys checks the server's keys and turns them into pinned keys: each
// must be an Ed25519 key whose key_id matches it, and one must be active.
func pinKeys(pks []protocol.PublicKey) ([]PinnedKey, error) {
	var keys []PinnedKey
	active := false
	seen := map[string]bool{}
	for _, k := range pks {
		if k.Algorithm != "" && k.Algorithm != "ed25519" {
			return nil, fmt.Errorf("key %q uses algorithm %q; only ed25519 is supported", k.KeyID, k.Algorithm)
		}
		pub, err := signing.ParsePublicKey(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("key %q: %v", k.KeyID, err)
		}
		if id := signing.KeyID(pub); id != k.KeyID {
			return nil, fmt.Errorf("key_id %q does not match its public key (whose id is %s)", k.KeyID, id)
		}
		if seen[k.KeyID] {
			continue
		}
		seen[k.KeyID] = true
		pk := PinnedKey{KeyID: k.KeyID, PublicKey: signing.EncodePublicKey(pub), Status: k.Status}
		switch k.Status {
		case KeyActive:
			active = true
		case KeyRetiring:
			if k.NotAfter != nil && *k.NotAfter > 0 {
				pk.NotAfter = *k.NotAfter
			}
		default:
			return nil, fmt.Errorf("key %q has status %q; expected active or retiring", k.KeyID, k.Status)
		}
		keys = append(keys, pk)
	}
	if !active {
		return nil, errors.New("it carries no active signing key, so the agent could never verify a command")
	}
	return keys, nil
}
