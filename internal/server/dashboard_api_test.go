package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// TestDashboardAPI: overview, trends, SSE and key rotation end to end.
func TestDashboardAPI(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 3)
			a1 := ts.RegisterAgent(t, reg, "dash-1")
			a2 := ts.RegisterAgent(t, reg, "dash-2")
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + a1.ID + "/reports/updates", Token: a1.Token, MachineID: a1.MachineID,
				Body: map[string]any{"scanner": "apt", "scanned_at": time.Now().UTC(), "updates": []map[string]any{
					{"package_type": "apt", "package_name": "openssl", "current_version": "1", "available_version": "2", "severity": "critical"},
					{"package_type": "apt", "package_name": "curl", "current_version": "1", "available_version": "2", "severity": "low"}}}})

			var ov struct {
				Agents            map[string]int `json:"agents"`
				UpdateStatus      map[string]int `json:"update_status"`
				PendingBySeverity map[string]int `json:"pending_by_severity"`
				PendingByType     map[string]int `json:"pending_by_package_type"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/stats/overview", Token: admin}).JSON(t, &ov)
			if ov.Agents["total"] != 2 || ov.UpdateStatus["updates_available"] != 1 || ov.UpdateStatus["never_scanned"] != 1 ||
				ov.PendingBySeverity["critical"] != 1 || ov.PendingBySeverity["low"] != 1 || ov.PendingByType["apt"] != 2 {
				t.Errorf("overview = %+v", ov)
			}

			// Trends: a snapshot, twice (upsert), reads back one day.
			for range 2 {
				if err := ts.Server.Store().SnapshotDay(context.Background(), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			var tr struct {
				Days []struct {
					Date    string         `json:"date"`
					Pending map[string]int `json:"pending"`
				} `json:"days"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/stats/trends?days=7", Token: admin}).JSON(t, &tr)
			if len(tr.Days) != 1 || tr.Days[0].Date != time.Now().UTC().Format(time.DateOnly) || tr.Days[0].Pending["critical"] != 1 {
				t.Errorf("trends = %+v", tr)
			}
			ts.Expect(t, http.StatusBadRequest, testserver.Req{Method: "GET", Path: "/api/v1/stats/trends?days=0", Token: admin})

			// SSE: unauthenticated 401; a client sees command_finished.
			ts.Expect(t, http.StatusUnauthorized, testserver.Req{Method: "GET", Path: "/api/v1/events"})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
			}
			var cr struct {
				Commands []protocol.SignedCommand `json:"commands"`
			}
			ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin,
				Body: map[string]any{"agent_ids": []string{a2.ID}, "type": "collect_specs"}}).JSON(t, &cr)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + a2.ID + "/commands", Token: a2.Token, MachineID: a2.MachineID})
			now := time.Now().UTC()
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + a2.ID + "/commands/" + cr.Commands[0].ID + "/result",
				Token: a2.Token, MachineID: a2.MachineID, Body: map[string]any{"status": "succeeded", "exit_code": 0, "output": "", "started_at": now, "finished_at": now}})
			sc := bufio.NewScanner(resp.Body)
			found := false
			for sc.Scan() {
				if sc.Text() == "event: command_finished" && sc.Scan() && strings.Contains(sc.Text(), cr.Commands[0].ID) {
					found = true
					break
				}
			}
			if !found {
				t.Error("the event stream never carried command_finished")
			}
			cancel()

			// Command records carry the hostname.
			var cmd struct {
				Hostname string `json:"hostname"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/commands/" + cr.Commands[0].ID, Token: admin}).JSON(t, &cmd)
			if cmd.Hostname != "dash-2" {
				t.Errorf("command hostname = %q", cmd.Hostname)
			}

			// Key rotation.
			var pk protocol.PublicKeys
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &pk)
			oldPub, _ := signing.ParsePublicKey(pk.Keys[0].PublicKey)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/security/keys/rotate", Token: admin})
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &pk)
			if len(pk.Keys) != 2 || pk.Keys[0].Status != "active" || pk.Keys[1].Status != "retiring" || pk.Keys[1].NotAfter == nil {
				t.Fatalf("public keys after rotation = %+v", pk.Keys)
			}
			newPub, _ := signing.ParsePublicKey(pk.Keys[0].PublicKey)
			for _, ag := range []testserver.Agent{a1, a2} {
				var ci protocol.CheckInResponse
				ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: ag.Token, MachineID: ag.MachineID}).JSON(t, &ci)
				if len(ci.Commands) != 1 || ci.Commands[0].Type != "rotate_key" {
					t.Fatalf("agent %s got %+v", ag.ID, ci.Commands)
				}
				c := ci.Commands[0]
				if err := signing.VerifyCommand(oldPub, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: c.Params,
					IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}, c.Signature); err != nil {
					t.Errorf("rotate_key does not verify under the old key: %v", err)
				}
			}
			var created struct {
				Commands []struct {
					ID        string `json:"id"`
					AgentID   string `json:"agent_id"`
					Type      string `json:"type"`
					Params    string `json:"params"`
					KeyID     string `json:"key_id"`
					Signature string `json:"signature"`
					IssuedAt  int64  `json:"issued_at"`
					ExpiresAt int64  `json:"expires_at"`
				} `json:"commands"`
			}
			ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin,
				Body: map[string]any{"agent_ids": []string{a2.ID}, "type": "collect_specs"}}).JSON(t, &created)
			c := created.Commands[0]
			if c.KeyID != signing.KeyID(newPub) {
				t.Errorf("command after rotation names key %s", c.KeyID)
			}
			if err := signing.VerifyCommand(newPub, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: []byte(c.Params),
				IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}, c.Signature); err != nil {
				t.Errorf("a command after rotation does not verify under the new key: %v", err)
			}
			retired, err := ts.Server.Store().RetireSigningKeys(context.Background(), time.Now().Add(31*24*time.Hour))
			if err != nil || len(retired) != 1 {
				t.Fatalf("retire: %v %v", retired, err)
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &pk)
			if len(pk.Keys) != 1 || pk.Keys[0].Status != "active" {
				t.Errorf("public keys after retirement = %+v", pk.Keys)
			}
		})
	}
}
