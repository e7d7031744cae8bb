package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// TestCheckInRedeliversUnacknowledged: a check-in answer that never reached
// its agent (here: read and thrown away) does not lose the command. Not
// acknowledged, it is offered again after the redelivery delay, once; an
// acknowledged command is never offered again, and only its own agent can
// acknowledge it.
func TestCheckInRedeliversUnacknowledged(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e, func(c *config.Server) { c.CommandRedeliver = 1 })
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 2)
			ag := ts.RegisterAgent(t, reg, "lossy")
			other := ts.RegisterAgent(t, reg, "other")
			checkIn := func(a testserver.Agent, acks ...string) []string {
				t.Helper()
				path := "/api/v1/agents/" + a.ID + "/commands"
				if len(acks) > 0 {
					path += "?ack=" + url.QueryEscape(strings.Join(acks, ","))
				}
				var ci protocol.CheckInResponse
				ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: path, Token: a.Token, MachineID: a.MachineID}).JSON(t, &ci)
				ids := []string{}
				for _, c := range ci.Commands {
					ids = append(ids, c.ID)
				}
				return ids
			}

			id := queueAndClaim(t, ts, admin, ag) // the answer is "lost"
			if got := checkIn(ag); len(got) != 0 {
				t.Fatalf("offered again at once: %v", got)
			}
			time.Sleep(1100 * time.Millisecond)
			if got := checkIn(ag); len(got) != 1 || got[0] != id {
				t.Fatalf("after the redelivery delay got %v, want %s", got, id)
			}
			if got := checkIn(ag); len(got) != 0 {
				t.Fatalf("redelivered twice: %v", got)
			}
			// Another agent's acknowledgement changes nothing.
			checkIn(other, id)
			time.Sleep(1100 * time.Millisecond)
			// This check-in gets it again and acknowledges nothing yet; the
			// next one acknowledges it, and then it never comes back.
			if got := checkIn(ag); len(got) != 1 || got[0] != id {
				t.Fatalf("after another agent's ack got %v, want %s", got, id)
			}
			if got := checkIn(ag, id); len(got) != 0 {
				t.Fatalf("check-in with the ack got %v", got)
			}
			c, err := ts.Server.Store().GetCommand(context.Background(), id)
			if err != nil || c.AckedAt == nil || c.Status != protocol.StateSent {
				t.Fatalf("after the ack: %+v, %v", c, err)
			}
			time.Sleep(1100 * time.Millisecond)
			if got := checkIn(ag); len(got) != 0 {
				t.Fatalf("an acknowledged command was offered again: %v", got)
			}
		})
	}
}

// TestCheckInAckInput: the ack parameter takes up to 100 command ids; a
// malformed list is 400 invalid_query and writes nothing.
func TestCheckInAckInput(t *testing.T) {
	ts := testserver.Start(t, "sqlite")
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 1)
	ag := ts.RegisterAgent(t, reg, "acker")
	req := func(query string) testserver.Req {
		return testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands?" + query, Token: ag.Token, MachineID: ag.MachineID}
	}
	ids := func(n int) string {
		out := make([]string, n)
		for i := range out {
			out[i] = uuid.NewString()
		}
		return strings.Join(out, ",")
	}
	id := uuid.NewString()
	for _, q := range []string{
		"ack=nope", "ack=" + id + ",", "ack=," + id, "ack=" + id + ",,", "ack=" + id[:35], "ack=" + id + "0",
		"ack=" + url.QueryEscape("{"+id+"}"), "ack=" + url.QueryEscape("urn:uuid:"+id), "ack=" + strings.ReplaceAll(id, "-", ""),
		"ack=" + url.QueryEscape(id+" "), "ack=" + url.QueryEscape("'; DROP TABLE commands;--"),
		"ack=" + ids(protocol.MaxAcksPerCheckIn+1), "ack=" + ids(60) + "&ack=" + ids(60), "wait=5&ack=x",
	} {
		refused(t, ts, "check-in "+q[:min(len(q), 60)], req(q), http.StatusBadRequest, "invalid_query")
	}
	for _, q := range []string{
		"ack=", "ack=" + id, "ack=" + strings.ToUpper(id), "ack=" + id + "," + id, "ack=" + ids(protocol.MaxAcksPerCheckIn),
		"ack=" + ids(50) + "&ack=" + ids(50), "wait=0&ack=" + id,
	} {
		ts.Expect(t, http.StatusOK, req(q))
	}
}
