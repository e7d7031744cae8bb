package server_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// TestGracefulShutdownFinishesInFlight starts a registration whose body is
// still being uploaded, stops the server (as SIGTERM does), then finishes
// the upload: the request must complete with 201 and the server must then
// refuse new connections.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 1)
	body, err := json.Marshal(testserver.RegisterBody(reg, "slow-upload", testserver.MachineID("slow-upload")))
	if err != nil {
		t.Fatal(err)
	}

	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", ts.URL+"/api/v1/agents/register", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		res.Body.Close()
		done <- result{status: res.StatusCode}
	}()
	// Half the body is on the wire: the request is in flight.
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	stopped := make(chan struct{})
	go func() { ts.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("server stopped while a request was still in flight")
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("in-flight registration: status %d, err %v; want 201", r.status, r.err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop after the in-flight request finished")
	}
	if c, err := net.DialTimeout("tcp", ts.URL[len("http://"):], time.Second); err == nil {
		c.Close()
		t.Fatal("server still accepts connections after shutdown")
	}
}
