package testserver

import (
	"net"
	"strings"
	"sync"
	"testing"
)

// killableListener hands out connections it remembers, so that Kill can
// close every one of them at once, as the death of the process would.
type killableListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	killed bool
}

func newKillableListener(ln net.Listener) *killableListener {
	return &killableListener{Listener: ln, conns: map[*trackedConn]struct{}{}}
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// kill closes the listener and every connection it accepted, mid-request
// or idle, without answering anything.
func (l *killableListener) kill() {
	l.mu.Lock()
	l.killed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	// Connections first: closing the listener ends Serve, which closes the
	// database, and a handler failing on that must not get its answer out.
	// A connection accepted meanwhile is closed by Accept.
	for _, c := range conns {
		c.Close()
	}
	l.Listener.Close()
}

type trackedConn struct {
	net.Conn
	l    *killableListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Kill stops the server abruptly, as kill -9 looks from outside: the
// listener and every open connection (idle, long-polling or mid-request)
// are closed at once and nothing more is answered. In-process the handlers
// that were running cannot be killed: they see their connection gone and
// their writes fail; Kill then winds down what is left of the old server
// (background jobs, event listener, database pool) so that a new server can
// start on the same data directory and database (see Restart). Kill is
// idempotent and makes the test's cleanup Stop a no-op.
func (ts *TS) Kill() {
	if ts.stop == nil {
		return
	}
	ts.ln.kill()
	// Serve returns as soon as its listener is gone, without the graceful
	// shutdown, and reports the listener it lost: that is the point.
	err := <-ts.done
	ts.stop()
	ts.stop = nil
	if err != nil && !strings.Contains(err.Error(), "closed") {
		ts.t.Errorf("killed server ended with an unexpected error: %v", err)
	}
}

// Restart starts a new server with the configuration of ts (same data
// directory, database, secrets) on the same address, so clients holding
// ts.URL reach the new one. ts must have been stopped or killed.
func (ts *TS) Restart(t testing.TB) *TS {
	t.Helper()
	cfg := ts.Config
	cfg.Listen = strings.TrimPrefix(ts.URL, "http://")
	return StartConfig(t, cfg)
}
