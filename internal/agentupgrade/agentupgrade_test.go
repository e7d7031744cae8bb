package agentupgrade

import (
	"errors"
	"testing"

	"github.com/redflaghq/redflag/internal/store"
)

func TestDecide(t *testing.T) {
	bin := served{version: "1.1.0", sha: "x", sig: "y", keyID: "k"}
	tgt := func(v string, u *store.AgentUpgrade) store.UpgradeTarget {
		return store.UpgradeTarget{ID: "a", OSType: "linux", OSArch: "amd64", AgentVersion: v, Upgrade: u}
	}
	blocked := &store.AgentUpgrade{Status: store.UpgradeFailed, AutoUpgradeBlocked: true, FailureReason: "boom"}
	busy := &store.AgentUpgrade{Status: store.UpgradeInProgress, TargetVersion: "1.1.0"}
	tests := []struct {
		name string
		t    store.UpgradeTarget
		s    served
		req  Request
		want string // skip code, "" to upgrade
	}{
		{"outdated", tgt("1.0.0", nil), bin, Request{}, ""},
		{"no binary", tgt("1.0.0", nil), served{err: errors.New("none")}, Request{}, SkipNoBinary},
		{"current", tgt("1.1.0", nil), bin, Request{}, SkipAlreadyCurrent},
		{"current with build metadata", tgt("1.1.0+g1", nil), bin, Request{}, SkipAlreadyCurrent},
		{"newer agent", tgt("1.2.0", nil), bin, Request{}, SkipOlder},
		{"newer agent, rollback", tgt("1.2.0", nil), bin, Request{Rollback: true}, ""},
		{"version guard", tgt("1.0.0", nil), bin, Request{Version: "1.2.0"}, SkipVersionMismatch},
		{"version guard met", tgt("1.0.0", nil), bin, Request{Version: "v1.1.0"}, ""},
		{"in progress", tgt("1.0.0", busy), bin, Request{}, SkipInProgress},
		{"blocked, by id", tgt("1.0.0", blocked), bin, Request{}, ""},
		{"blocked, all outdated", tgt("1.0.0", blocked), bin, Request{AllOutdated: true}, SkipBlocked},
		{"developer build, by id", tgt("dev", nil), bin, Request{}, ""},
		{"developer build, all outdated", tgt("dev", nil), bin, Request{AllOutdated: true}, SkipUnknownVersion},
	}
	for _, tt := range tests {
		got := ""
		if sk := decide(tt.t, tt.s, tt.req); sk != nil {
			got = sk.Code
			if sk.Reason == "" || sk.AgentID != "a" {
				t.Errorf("%s: skip without a reason or agent: %+v", tt.name, sk)
			}
		}
		if got != tt.want {
			t.Errorf("%s: decide = %q, want %q", tt.name, got, tt.want)
		}
	}
}
