// Package server assembles a running RedFlag server from its configuration:
// data directory, secrets, store, signing key, first admin, API and the
// HTTP server with graceful shutdown.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redflaghq/redflag/internal/agentbin"
	"github.com/redflaghq/redflag/internal/agentupgrade"
	"github.com/redflaghq/redflag/internal/api"
	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/events"
	"github.com/redflaghq/redflag/internal/jobs"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/version"
	"github.com/redflaghq/redflag/internal/webui"
)

// ShutdownTimeout bounds how long in-flight requests may take after SIGTERM.
const ShutdownTimeout = 30 * time.Second

// Server is a configured, not yet serving, RedFlag server.
type Server struct {
	cfg        config.Server
	log        *slog.Logger
	st         *store.Store
	api        *api.API
	auth       *auth.Service
	key        *signing.Key
	keys       *signing.Keyring
	hub        *events.Hub
	jobs       *jobs.Runner
	setupToken string
}

// New prepares everything that must hold before the first request: a bad
// configuration, an unreachable database or a failed migration is an error
// here, not a broken server later.
func New(ctx context.Context, cfg config.Server, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", cfg.DataDir, err)
	}
	if fi, err := os.Stat(cfg.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("data directory is readable by other users; consider chmod 700", "dir", cfg.DataDir)
	}
	secret, err := jwtSecret(cfg)
	if err != nil {
		return nil, err
	}
	key, created, err := signing.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, "signing.key"))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if created {
		log.Info("generated a new command-signing key", "key_id", key.ID)
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: log,
		CommandRedeliver: time.Duration(cfg.CommandRedeliver) * time.Second})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	if err := st.EnsureSigningKey(ctx, key.ID, signing.EncodePublicKey(key.Public), store.Now()); err != nil {
		return nil, err
	}
	as, err := auth.NewService(auth.Config{Store: st, JWTSecret: secret, CheckInIntervalSeconds: cfg.CheckInInterval})
	if err != nil {
		return nil, err
	}
	keys, err := loadKeyring(ctx, st, cfg.DataDir, key)
	if err != nil {
		return nil, err
	}
	key = keys.Active()
	s := &Server{cfg: cfg, log: log, st: st, auth: as, key: key, keys: keys}
	if err := s.firstAdmin(ctx); err != nil {
		return nil, err
	}
	s.hub = events.NewHub()
	dashboard, err := webui.Embedded()
	if err != nil {
		return nil, fmt.Errorf("loading the embedded dashboard: %w", err)
	}
	defaults := store.DefaultSettings(cfg.CheckInInterval)
	binDir := cfg.AgentBinariesDir
	if binDir == "" {
		binDir = agentbin.DefaultPath(cfg.DataDir)
	}
	log.Info("serving agent binaries", "dir", binDir)
	bins := agentbin.New(binDir, key, version.Version)
	bins.UseActiveKey(keys.Active)
	s.api = api.New(api.Deps{
		Store: st, Auth: as, SigningKey: key, Keys: keys, KeyDir: cfg.DataDir, Logger: log, Metrics: api.NewMetrics(st, time.Now),
		AgentRateLimit: cfg.AgentRateLimit, MetricsToken: cfg.MetricsToken,
		SecureCookies: cfg.TLSCert != "" || strings.HasPrefix(cfg.PublicURL, "https://"),
		Hub:           s.hub, DefaultSettings: defaults, Dashboard: dashboard,
		AgentBinaries: bins, PublicURL: cfg.PublicURL,
	})
	s.jobs = &jobs.Runner{Store: st, Log: log, Interval: time.Duration(cfg.JobInterval) * time.Second, Defaults: defaults,
		Upgrades: &agentupgrade.Planner{Store: st, Binaries: bins, Key: key, PublicURL: cfg.PublicURL, Log: log},
		Wake:     s.hub.Publish,
		Keys:     keys, RefreshKeys: func(ctx context.Context) error { return refreshActiveKey(ctx, st, cfg.DataDir, keys) }}
	ok = true
	return s, nil
}

// jwtSecret returns the configured secret, or the one generated into the
// data directory on first start.
func jwtSecret(cfg config.Server) ([]byte, error) {
	if cfg.JWTSecret != "" {
		if len(cfg.JWTSecret) < auth.MinSecretLen {
			return nil, fmt.Errorf("REDFLAG_JWT_SECRET is %d bytes long; it must be at least %d", len(cfg.JWTSecret), auth.MinSecretLen)
		}
		return []byte(cfg.JWTSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "jwt.secret")
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < auth.MinSecretLen {
			return nil, fmt.Errorf("%s holds a secret shorter than %d bytes; delete it to generate a new one", path, auth.MinSecretLen)
		}
		return []byte(s), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return []byte(s), nil
}

func (s *Server) firstAdmin(ctx context.Context) error {
	if s.cfg.AdminUser != "" {
		created, err := s.auth.EnsureAdmin(ctx, s.cfg.AdminUser, s.cfg.AdminPassword)
		if err != nil {
			return err
		}
		if created {
			s.log.Info("created the first admin from REDFLAG_ADMIN_USER", "username", s.cfg.AdminUser)
		}
		return nil
	}
	tok, _, err := s.auth.PrepareSetup(ctx)
	if err != nil {
		return err
	}
	s.setupToken = tok
	return nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.api }

// API exposes the router (tests walk its routes).
func (s *Server) API() *api.API { return s.api }

// Store exposes the store (tests check what was written).
func (s *Server) Store() *store.Store { return s.st }

// Auth exposes the credential service (benchmarks mint tokens).
func (s *Server) Auth() *auth.Service { return s.auth }

// Serve answers on ln until ctx ends, then lets in-flight requests finish
// (up to ShutdownTimeout) and closes the database.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.st.Close()
	hs := &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	scheme := "http"
	if s.cfg.TLSCert != "" {
		scheme = "https"
	}
	url := s.cfg.PublicURL
	if url == "" {
		url = scheme + "://" + displayAddr(ln.Addr())
	}
	s.log.Info("RedFlag server listening", "url", url, "version", version.Version, "database", string(s.st.Dialect()))
	if s.setupToken != "" {
		// The one secret deliberately printed: it opens setup once, and only
		// until the first admin exists.
		s.log.Warn("no admin account yet: open this URL to create one (the link works once)",
			"setup_url", url+"/setup?token="+s.setupToken)
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.jobs.Run(bg) }()
	if s.st.Dialect() == store.Postgres {
		wg.Add(1)
		go func() { defer wg.Done(); events.ListenPostgres(bg, s.cfg.DatabaseURL, s.hub, s.log) }()
	}
	defer func() { stopBG(); wg.Wait() }()
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.cfg.TLSCert != "" {
			err = hs.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			err = hs.Serve(ln)
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests")
	s.api.StopWaiting()
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	<-errc
	s.log.Info("stopped")
	return nil
}

func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return tcp.String()
}

// Run is New, listen on cfg.Listen, and Serve.
func Run(ctx context.Context, cfg config.Server, log *slog.Logger) error {
	s, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.st.Close()
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// loadKeyring builds the server's keyring: the first key (signing.key),
// and the key the database names active, loaded from its key file
// (signing-<key id>.key) when rotation made another key active. Replicas
// must share these files as they share signing.key.
func loadKeyring(ctx context.Context, st *store.Store, dir string, first *signing.Key) (*signing.Keyring, error) {
	keys := signing.NewKeyring(first)
	if err := refreshActiveKey(ctx, st, dir, keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// refreshActiveKey makes the database's active key the keyring's active
// key (another replica may have rotated), loading its file when needed.
func refreshActiveKey(ctx context.Context, st *store.Store, dir string, keys *signing.Keyring) error {
	id, err := st.ActiveSigningKeyID(ctx)
	if err != nil {
		return fmt.Errorf("finding the active signing key: %w", err)
	}
	if keys.Active().ID == id {
		return nil
	}
	if k := keys.Get(id); k != nil {
		keys.Add(k, true)
		return nil
	}
	path := signing.RotatedKeyFile(dir, id)
	k, err := signing.LoadKeyFile(path)
	if err != nil {
		return fmt.Errorf("the active signing key %s (rotated) needs its key file %s: %w", id, path, err)
	}
	if k.ID != id {
		return fmt.Errorf("key file %s holds key %s, not %s", path, k.ID, id)
	}
	keys.Add(k, true)
	return nil
}
