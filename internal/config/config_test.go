package config

import (
	"io"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadServer(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Server)
	}{
		{name: "defaults", check: func(t *testing.T, c Server) {
			if c.Listen != ":8080" || c.DatabaseURL != "sqlite://data/redflag.db" || c.AgentRateLimit != 60 || c.LogFormat != "text" {
				t.Fatalf("defaults wrong: %+v", c)
			}
		}},
		{name: "env", env: map[string]string{"REDFLAG_LISTEN": "127.0.0.1:9", "REDFLAG_DATA_DIR": "/tmp/x", "REDFLAG_AGENT_RATE_LIMIT": "0"},
			check: func(t *testing.T, c Server) {
				if c.Listen != "127.0.0.1:9" || c.DatabaseURL != "sqlite:///tmp/x/redflag.db" || c.AgentRateLimit != 0 || c.AgentBinariesDir != "" {
					t.Fatalf("env not applied: %+v", c)
				}
			}},
		{name: "flag beats env", args: []string{"--listen", ":1"}, env: map[string]string{"REDFLAG_LISTEN": ":2"},
			check: func(t *testing.T, c Server) {
				if c.Listen != ":1" {
					t.Fatalf("listen = %q", c.Listen)
				}
			}},
		{name: "weak jwt secret", env: map[string]string{"REDFLAG_JWT_SECRET": "short"}, wantErr: "at least 32"},
		{name: "admin without password", env: map[string]string{"REDFLAG_ADMIN_USER": "root"}, wantErr: "both"},
		{name: "short admin password", env: map[string]string{"REDFLAG_ADMIN_USER": "root", "REDFLAG_ADMIN_PASSWORD": "short"}, wantErr: "12"},
		{name: "bad number", env: map[string]string{"REDFLAG_AGENT_RATE_LIMIT": "lots"}, wantErr: "whole number"},
		{name: "negative rate", args: []string{"--agent-rate-limit=-1"}, wantErr: "negative"},
		{name: "tls half", args: []string{"--tls-cert", "c.pem"}, wantErr: "both"},
		{name: "bad public url", env: map[string]string{"REDFLAG_PUBLIC_URL": "ftp://x"}, wantErr: "http"},
		{name: "stray arg", args: []string{"serve"}, wantErr: "unexpected"},
		{name: "redeliver default", check: func(t *testing.T, c Server) {
			if c.CommandRedeliver != 60 {
				t.Fatalf("command redeliver = %d, want 60", c.CommandRedeliver)
			}
		}},
		{name: "redeliver env", env: map[string]string{"REDFLAG_COMMAND_REDELIVER_SECONDS": "5"}, check: func(t *testing.T, c Server) {
			if c.CommandRedeliver != 5 {
				t.Fatalf("command redeliver = %d, want 5", c.CommandRedeliver)
			}
		}},
		{name: "redeliver zero", env: map[string]string{"REDFLAG_COMMAND_REDELIVER_SECONDS": "0"}, wantErr: "REDFLAG_COMMAND_REDELIVER_SECONDS"},
		{name: "redeliver too long", args: []string{"--command-redeliver-seconds=3601"}, wantErr: "1 to 3600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadServer(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
