package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

func registerServer(t *testing.T, keys func() []protocol.PublicKey, got *protocol.RegisterRequest) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/agents/register" {
			http.NotFound(w, r)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(got); err != nil {
			t.Error(err)
		}
		if got.RegistrationToken != "good-token" {
			writeError(w, 401, "registration_refused", "The registration token is unknown, expired, revoked or out of seats.")
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(protocol.RegisterResponse{AgentID: testAgentID, Token: fakeJWT("t", t0.Add(24*time.Hour)),
			RefreshToken: "r", CheckInIntervalSeconds: 120, PublicKeys: keys()})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func pubKey(k *signing.Key, status string, notAfter *int64) protocol.PublicKey {
	return protocol.PublicKey{KeyID: k.ID, Algorithm: "ed25519", PublicKey: signing.EncodePublicKey(k.Public), Status: status, NotAfter: notAfter}
}

func TestRegister(t *testing.T) {
	active, old := mustKey(t), mustKey(t)
	na := t0.Add(48 * time.Hour).Unix()
	var got protocol.RegisterRequest
	srv := registerServer(t, func() []protocol.PublicKey {
		return []protocol.PublicKey{pubKey(active, "active", nil), pubKey(old, "retiring", &na)}
	}, &got)
	path := filepath.Join(t.TempDir(), "agent", "config.json")
	// An earlier config's overrides survive a re-registration.
	prev := testConfig("https://old.example.com", old)
	prev.PollIntervalSeconds = 60
	if err := SaveConfig(path, prev); err != nil {
		t.Fatal(err)
	}
	cfg, err := Register(context.Background(), RegisterOptions{ServerURL: srv.URL + "/", RegistrationToken: "good-token", ConfigPath: path,
		MachineID: testMachineID, Host: HostInfo{Hostname: "web-01"}, Version: "1.0.0", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if got.Hostname != "web-01" || got.MachineID != testMachineID || got.AgentVersion != "1.0.0" || got.OSType != runtime.GOOS || got.OSArch != runtime.GOARCH {
		t.Errorf("request %+v", got)
	}
	onDisk, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.ServerURL != srv.URL || onDisk.AgentID != testAgentID || onDisk.CheckInIntervalSeconds != 120 || onDisk.PollIntervalSeconds != 60 ||
		!onDisk.TokenExpiresAt.Equal(t0.Add(24*time.Hour)) || cfg.AgentID != testAgentID {
		t.Errorf("config %+v", onDisk)
	}
	if len(onDisk.PinnedKeys) != 2 || onDisk.PinnedKeys[0].KeyID != active.ID || onDisk.PinnedKeys[1].NotAfter != na {
		t.Errorf("pinned keys %+v", onDisk.PinnedKeys)
	}
	if st, _ := os.Stat(path); runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %04o", st.Mode().Perm())
	}
}

func TestRegisterRefusals(t *testing.T) {
	k, other := mustKey(t), mustKey(t)
	tests := []struct {
		name  string
		token string
		keys  []protocol.PublicKey
		want  string
	}{
		{"bad token", "nope", []protocol.PublicKey{pubKey(k, "active", nil)}, "refused the registration token"},
		{"no keys", "good-token", nil, "no active signing key"},
		{"only a retiring key", "good-token", []protocol.PublicKey{pubKey(k, "retiring", nil)}, "no active signing key"},
		{"key id mismatch", "good-token", []protocol.PublicKey{{KeyID: other.ID, Algorithm: "ed25519", PublicKey: signing.EncodePublicKey(k.Public), Status: "active"}}, "does not match"},
		{"other algorithm", "good-token", []protocol.PublicKey{{KeyID: k.ID, Algorithm: "rsa", PublicKey: signing.EncodePublicKey(k.Public), Status: "active"}}, "only ed25519"},
		{"empty token", "", nil, "registration token is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got protocol.RegisterRequest
			srv := registerServer(t, func() []protocol.PublicKey { return tt.keys }, &got)
			path := filepath.Join(t.TempDir(), "config.json")
			_, err := Register(context.Background(), RegisterOptions{ServerURL: srv.URL, RegistrationToken: tt.token, ConfigPath: path, MachineID: testMachineID})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Error("a config was written although registration failed")
			}
		})
	}
}
