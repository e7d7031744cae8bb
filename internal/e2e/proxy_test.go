package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// tamperFunc rewrites one delivered command.
type tamperFunc func(sc protocol.SignedCommand) (protocol.SignedCommand, error)

// proxy sits between an agent and the server (a man in the middle). It
// forwards everything through httputil.ReverseProxy and can:
//   - rewrite the next command the server delivers in a check-in answer,
//   - answer a check-in itself with commands of the test's choosing,
//   - answer result POSTs 503 instead of forwarding them,
//
// and it records the system reports and results that went through.
type proxy struct {
	t      *testing.T
	srv    *httptest.Server
	rp     *httputil.ReverseProxy
	inject chan []protocol.SignedCommand

	mu            sync.Mutex
	tamperNext    tamperFunc
	tampered      []string // ids of the commands rewritten, in order
	tamperErr     error
	delivered     map[string]protocol.SignedCommand // as the server sent them
	interval      int                               // the server's check_in_interval_seconds
	blockResults  bool
	blocked       map[string]int   // result POSTs answered 503, by command id
	resultStatus  map[string][]int // the server's answers to result POSTs, by command id
	systemReports int              // system reports the server accepted
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, inject: make(chan []protocol.SignedCommand, 1), delivered: map[string]protocol.SignedCommand{},
		interval: 300, blocked: map[string]int{}, resultStatus: map[string][]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		ModifyResponse: p.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				t.Logf("proxy: %s %s: %v", r.Method, r.URL.Path, err)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxy) url() string { return p.srv.URL }

// agentPath splits /api/v1/agents/{id}/rest into id and rest.
func agentPath(path string) (id, rest string, ok bool) {
	s, ok := strings.CutPrefix(path, "/api/v1/agents/")
	if !ok {
		return "", "", false
	}
	id, rest, ok = strings.Cut(s, "/")
	return id, rest, ok
}

// resultCommandID returns the command id of a result POST path.
func resultCommandID(method, path string) (string, bool) {
	_, rest, ok := agentPath(path)
	if !ok || method != http.MethodPost {
		return "", false
	}
	id, ok := strings.CutPrefix(rest, "commands/")
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, "/result")
	return id, ok && !strings.Contains(id, "/")
}

func isCheckIn(method, path string) bool {
	_, rest, ok := agentPath(path)
	return ok && method == http.MethodGet && rest == "commands"
}

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	if isCheckIn(r.Method, r.URL.Path) {
		p.checkIn(w, r)
		return
	}
	if id, ok := resultCommandID(r.Method, r.URL.Path); ok {
		p.mu.Lock()
		block := p.blockResults
		if block {
			p.blocked[id]++
		}
		p.mu.Unlock()
		if block {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":"unavailable","message":"The proxy in the test blocks results."}}`)
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// checkIn forwards a check-in (a long-poll the server may hold), unless the
// test injects commands first: then the upstream request is abandoned and
// the proxy answers with the injected commands itself.
func (p *proxy) checkIn(w http.ResponseWriter, r *http.Request) {
	select {
	case cmds := <-p.inject:
		p.answer(w, cmds)
		return
	default:
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.rp.ServeHTTP(rec, r.WithContext(ctx))
	}()
	select {
	case <-done:
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	case cmds := <-p.inject:
		cancel()
		<-done
		// Should the server have handed out commands just before the
		// request was abandoned, they are passed on too, never lost.
		if rec.Code == http.StatusOK {
			var resp protocol.CheckInResponse
			if json.Unmarshal(rec.Body.Bytes(), &resp) == nil {
				cmds = append(resp.Commands, cmds...)
			}
		}
		p.answer(w, cmds)
	}
}

func (p *proxy) answer(w http.ResponseWriter, cmds []protocol.SignedCommand) {
	p.mu.Lock()
	interval := p.interval
	p.mu.Unlock()
	b, err := marshalCompact(protocol.CheckInResponse{Commands: cmds, CheckInIntervalSeconds: interval})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// marshalCompact encodes v without HTML escaping, so raw params keep the
// exact bytes the signature covers.
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (p *proxy) modifyResponse(resp *http.Response) error {
	req := resp.Request
	switch {
	case isCheckIn(req.Method, req.URL.Path) && resp.StatusCode == http.StatusOK:
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		nb, err := p.rewriteCheckIn(b)
		if err != nil {
			p.mu.Lock()
			p.tamperErr = err
			p.mu.Unlock()
			nb = b
		}
		resp.Body = io.NopCloser(bytes.NewReader(nb))
		resp.ContentLength = int64(len(nb))
		resp.Header.Set("Content-Length", strconv.Itoa(len(nb)))
	case req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/reports/system"):
		if resp.StatusCode == http.StatusNoContent {
			p.mu.Lock()
			p.systemReports++
			p.mu.Unlock()
		}
	default:
		if id, ok := resultCommandID(req.Method, req.URL.Path); ok {
			p.mu.Lock()
			p.resultStatus[id] = append(p.resultStatus[id], resp.StatusCode)
			p.mu.Unlock()
		}
	}
	return nil
}

// rewriteCheckIn records the delivered commands and applies the pending
// tamper function to the first one. Fields other than commands are kept
// as they are.
func (p *proxy) rewriteCheckIn(b []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("check-in answer: %w", err)
	}
	var cmds []protocol.SignedCommand
	if err := json.Unmarshal(top["commands"], &cmds); err != nil {
		return nil, fmt.Errorf("check-in commands: %w", err)
	}
	var interval int
	_ = json.Unmarshal(top["check_in_interval_seconds"], &interval)
	p.mu.Lock()
	defer p.mu.Unlock()
	if interval > 0 {
		p.interval = interval
	}
	changed := false
	for i, sc := range cmds {
		p.delivered[sc.ID] = sc
		if p.tamperNext == nil {
			continue
		}
		f := p.tamperNext
		p.tamperNext = nil
		nsc, err := f(sc)
		if err != nil {
			return nil, err
		}
		cmds[i] = nsc
		p.tampered = append(p.tampered, sc.ID)
		changed = true
	}
	if !changed {
		return b, nil
	}
	raw, err := marshalCompact(cmds)
	if err != nil {
		return nil, err
	}
	top["commands"] = raw
	return marshalCompact(top)
}

// setTamperNext makes the proxy rewrite the next command the server delivers.
func (p *proxy) setTamperNext(f tamperFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamperNext = f
}

// tamperedIDs returns the ids of the rewritten commands and the first
// error of a tamper function.
func (p *proxy) tamperedIDs() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tampered...), p.tamperErr
}

// deliveredCommand returns a command as the server delivered it.
func (p *proxy) deliveredCommand(id string) (protocol.SignedCommand, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sc, ok := p.delivered[id]
	return sc, ok
}

// injectCommands hands cmds to the agent in the answer to its current or
// next check-in.
func (p *proxy) injectCommands(t *testing.T, cmds ...protocol.SignedCommand) {
	t.Helper()
	select {
	case p.inject <- cmds:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent has not yet picked up the commands injected before")
	}
}

func (p *proxy) setBlockResults(b bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blockResults = b
}

func (p *proxy) blockedResults(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked[id]
}

// resultAnswers returns the server's status codes to result POSTs of id.
func (p *proxy) resultAnswers(id string) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.resultStatus[id]...)
}

func (p *proxy) systemReportCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.systemReports
}
