package server_test

import (
	"net/http"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// TestAgentLifecycle walks the happy path over HTTP on every engine:
// login, registration token, register, check-in, renew, list, delete.
func TestAgentLifecycle(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 2)
			ag := ts.RegisterAgent(t, reg, "web-01")

			var ci protocol.CheckInResponse
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands",
				Token: ag.Token, MachineID: ag.MachineID, Header: map[string]string{"X-Agent-Version": "0.1.1"}}).JSON(t, &ci)
			if ci.CheckInIntervalSeconds != 300 || len(ci.Commands) != 0 {
				t.Fatalf("check-in = %+v", ci)
			}

			var rn protocol.RenewResponse
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: ag.MachineID,
				Body: protocol.RenewRequest{AgentID: ag.ID, RefreshToken: ag.RefreshToken}}).JSON(t, &rn)
			if rn.Token == "" || rn.RefreshToken == "" || rn.RefreshToken == ag.RefreshToken {
				t.Fatalf("renew = %+v", rn)
			}
			// The old refresh token is spent.
			r := ts.Expect(t, http.StatusUnauthorized, testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: ag.MachineID,
				Body: protocol.RenewRequest{AgentID: ag.ID, RefreshToken: ag.RefreshToken}})
			if r.ErrorCode() != "unauthorized" {
				t.Fatalf("reused refresh token: %s", r.Body)
			}
			// The new JWT works.
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: rn.Token, MachineID: ag.MachineID})

			var list struct {
				Items []struct {
					ID       string `json:"id"`
					Hostname string `json:"hostname"`
					Status   string `json:"status"`
					Version  string `json:"agent_version"`
				} `json:"items"`
				Total int `json:"total"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents", Token: admin}).JSON(t, &list)
			if list.Total != 1 || len(list.Items) != 1 || list.Items[0].ID != ag.ID || list.Items[0].Hostname != "web-01" || list.Items[0].Status != "online" || list.Items[0].Version != "0.1.1" {
				t.Fatalf("agents = %+v", list)
			}
			ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "DELETE", Path: "/api/v1/agents/" + ag.ID, Token: admin})
			ts.Expect(t, http.StatusUnauthorized, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: rn.Token, MachineID: ag.MachineID})
		})
	}
}
