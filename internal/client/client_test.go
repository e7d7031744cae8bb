package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

var testMachineID = strings.Repeat("ab", 32)

func newTestClient(t *testing.T, h http.HandlerFunc, o Options) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if o.MachineID == "" {
		o.MachineID = testMachineID
	}
	if o.AgentVersion == "" {
		o.AgentVersion = "1.2.3"
	}
	c, err := New(srv.URL+"/", o)
	if err != nil {
		t.Fatal(err)
	}
	c.SetCredentials("agent-1", "jwt-1")
	return c
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(protocol.ErrorBody{Error: protocol.ErrorDetail{Code: code, Message: msg}})
}

func TestParseServerURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://rf.example.com", "https://rf.example.com", true},
		{"https://rf.example.com/", "https://rf.example.com", true},
		{" http://10.0.0.5:8080/redflag/ ", "http://10.0.0.5:8080/redflag", true},
		{"", "", false},
		{"rf.example.com", "", false},
		{"ftp://rf.example.com", "", false},
		{"https://", "", false},
		{"https://user:pw@rf.example.com", "", false},
		{"https://rf.example.com/?x=1", "", false},
		{"https://rf.example.com/#frag", "", false},
	}
	for _, tt := range tests {
		u, err := ParseServerURL(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseServerURL(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && u.String() != tt.want {
			t.Errorf("ParseServerURL(%q) = %q, want %q", tt.in, u, tt.want)
		}
	}
}

func TestRegisterAndRenew(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/agents/register":
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("register: %s with content type %q", r.Method, r.Header.Get("Content-Type"))
			}
			var req protocol.RegisterRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.RegistrationToken != "reg" || req.MachineID != testMachineID {
				t.Errorf("register body %+v, %v", req, err)
			}
			if r.Header.Get("Authorization") != "" {
				t.Error("register must not send an Authorization header")
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(protocol.RegisterResponse{AgentID: "a1", Token: "t", RefreshToken: "r", CheckInIntervalSeconds: 300})
		case "/api/v1/agents/renew":
			if r.Header.Get(protocol.HeaderMachineID) != testMachineID {
				t.Errorf("renew without %s", protocol.HeaderMachineID)
			}
			var req protocol.RenewRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			if req.AgentID != "a1" || req.RefreshToken != "r" {
				writeErr(w, 401, "unauthorized", "no")
				return
			}
			_ = json.NewEncoder(w).Encode(protocol.RenewResponse{Token: "t2", RefreshToken: "r2"})
		default:
			http.NotFound(w, r)
		}
	}, Options{})
	ctx := context.Background()
	reg, err := c.Register(ctx, protocol.RegisterRequest{RegistrationToken: "reg", MachineID: testMachineID})
	if err != nil || reg.AgentID != "a1" || reg.CheckInIntervalSeconds != 300 {
		t.Fatalf("Register = %+v, %v", reg, err)
	}
	ren, err := c.Renew(ctx, "a1", "r")
	if err != nil || ren.Token != "t2" || ren.RefreshToken != "r2" {
		t.Fatalf("Renew = %+v, %v", ren, err)
	}
	_, err = c.Renew(ctx, "a1", "wrong")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "unauthorized" || StatusCode(err) != 401 {
		t.Fatalf("Renew with a bad token: %v", err)
	}
}

func TestCheckInHeadersAndWait(t *testing.T) {
	var gotQuery, gotAuth, gotMID, gotVer, gotPath string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		gotAuth, gotMID, gotVer = r.Header.Get("Authorization"), r.Header.Get(protocol.HeaderMachineID), r.Header.Get(protocol.HeaderAgentVersion)
		_, _ = io.WriteString(w, `{"commands":[{"id":"c1","agent_id":"agent-1","type":"collect_specs","params":{"a": 1},"issued_at":1,"expires_at":2,"key_id":"k","signature":"s"}],"check_in_interval_seconds":60,"future_field":true}`)
	}, Options{})
	for _, tt := range []struct {
		wait      int
		wantQuery string
	}{{0, ""}, {30, "wait=30"}, {500, "wait=60"}} {
		resp, err := c.CheckIn(context.Background(), tt.wait)
		if err != nil {
			t.Fatal(err)
		}
		if gotQuery != tt.wantQuery {
			t.Errorf("wait %d: query %q, want %q", tt.wait, gotQuery, tt.wantQuery)
		}
		if gotPath != "/api/v1/agents/agent-1/commands" || gotAuth != "Bearer jwt-1" || gotMID != testMachineID || gotVer != "1.2.3" {
			t.Errorf("request %s auth=%q mid=%q ver=%q", gotPath, gotAuth, gotMID, gotVer)
		}
		if len(resp.Commands) != 1 || string(resp.Commands[0].Params) != `{"a": 1}` || resp.CheckInIntervalSeconds != 60 {
			t.Errorf("response %+v (params must keep their exact bytes)", resp)
		}
	}
}

func TestCheckInWithoutCredentials(t *testing.T) {
	c, err := New("https://example.invalid", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckIn(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "no agent credentials") {
		t.Fatalf("CheckIn without credentials: %v", err)
	}
}

func TestLongPollTimeoutIsWaitPlusMargin(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, Options{LongPollMargin: 200 * time.Millisecond, RequestTimeout: 50 * time.Millisecond})
	start := time.Now()
	_, err := c.CheckIn(context.Background(), 1)
	el := time.Since(start)
	var ne *NetworkError
	if !errors.As(err, &ne) || !IsTimeout(err) {
		t.Fatalf("err = %v, want a timeout NetworkError", err)
	}
	if el < time.Second || el > 5*time.Second {
		t.Errorf("long-poll gave up after %s, want about 1.2 s", el)
	}
	// A plain call uses RequestTimeout.
	start = time.Now()
	if _, err := c.CheckIn(context.Background(), 0); !IsTimeout(err) {
		t.Fatalf("plain check-in: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("plain call gave up after %s, want about 50 ms", el)
	}
}

func TestSendResult(t *testing.T) {
	tests := []struct {
		name     string
		handler  func(w http.ResponseWriter)
		wantErr  bool
		wantGone bool
		status   int
	}{
		{"acknowledged", func(w http.ResponseWriter) { _, _ = io.WriteString(w, `{}`) }, false, false, 0},
		{"unknown command", func(w http.ResponseWriter) { writeErr(w, 404, "not_found", "No such resource.") }, true, true, 404},
		{"already closed", func(w http.ResponseWriter) { writeErr(w, 409, "conflict", "closed") }, true, true, 409},
		{"route missing", func(w http.ResponseWriter) { http.Error(w, "404 page not found", 404) }, true, false, 404},
		{"server error", func(w http.ResponseWriter) { w.WriteHeader(502) }, true, false, 502},
		{"bad body", func(w http.ResponseWriter) { writeErr(w, 400, "invalid_field", "bad") }, true, false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.EscapedPath() != "/api/v1/agents/agent-1/commands/cmd%2F1/result" {
					t.Errorf("%s %s", r.Method, r.URL.EscapedPath())
				}
				var res protocol.CommandResult
				if err := json.NewDecoder(r.Body).Decode(&res); err != nil || res.Status != "succeeded" {
					t.Errorf("body %+v %v", res, err)
				}
				tt.handler(w)
			}, Options{})
			err := c.SendResult(context.Background(), "cmd/1", protocol.CommandResult{Status: "succeeded"})
			if (err != nil) != tt.wantErr || errors.Is(err, ErrCommandGone) != tt.wantGone {
				t.Fatalf("err = %v, wantErr %v wantGone %v", err, tt.wantErr, tt.wantGone)
			}
			if tt.status != 0 && StatusCode(err) != tt.status {
				t.Errorf("status %d, want %d", StatusCode(err), tt.status)
			}
		})
	}
}

func TestSendSystemReport(t *testing.T) {
	var got protocol.SystemReport
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/agents/agent-1/reports/system" {
			t.Errorf("path %s", r.URL.Path)
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusNoContent)
	}, Options{})
	if err := c.SendSystemReport(context.Background(), protocol.SystemReport{Hostname: "h", CPUCores: 4}); err != nil {
		t.Fatal(err)
	}
	if got.Hostname != "h" || got.CPUCores != 4 {
		t.Errorf("server got %+v", got)
	}
}

func TestRateLimitedError(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set(protocol.HeaderRequestID, "req-9")
		writeErr(w, 429, "rate_limited", "slow down")
	}, Options{})
	_, err := c.CheckIn(context.Background(), 0)
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v", err)
	}
	if ae.RetryAfter != 7*time.Second || ae.Code != "rate_limited" || ae.RequestID != "req-9" || !ae.Temporary() {
		t.Errorf("APIError %+v", ae)
	}
	if s := ae.Error(); !strings.Contains(s, "429") || !strings.Contains(s, "rate_limited") || strings.Contains(s, "jwt-1") {
		t.Errorf("Error() = %q", s)
	}
}

func TestNonJSONErrorBody(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>\n<b>Bad gateway</b>\x00</html>")
	}, Options{})
	_, err := c.CheckIn(context.Background(), 0)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "" || ae.StatusCode != 502 || strings.ContainsAny(ae.Message, "\n") {
		t.Fatalf("err = %#v", err)
	}
}

func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := New(url, Options{MachineID: testMachineID})
	c.SetCredentials("a", "t")
	_, err := c.CheckIn(context.Background(), 0)
	var ne *NetworkError
	if !errors.As(err, &ne) || StatusCode(err) != 0 {
		t.Fatalf("err = %v, want a NetworkError", err)
	}
}

func TestBadSuccessBody(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "not json") }, Options{})
	if _, err := c.CheckIn(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "not the expected JSON") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"5", 5 * time.Second}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
