package api

import (
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

// The agent upgrade route decodes one more body (see fuzz_test.go).

func checkUpgrade(t *testing.T, data []byte) {
	var ids []string
	req, ok := decodeCase(t, data, MaxReportBodyBytes, func(r *upgradeRequest) *apiError {
		var e *apiError
		ids, e = validateUpgrade(*r)
		return e
	}, nil, nil)
	if !ok {
		return
	}
	if req.AllOutdated == (len(ids) > 0) || len(ids) > len(req.AgentIDs) || (req.AllOutdated && req.Rollback) ||
		(req.Version != "" && !protocol.ValidVersion(req.Version)) {
		t.Fatalf("accepted %+v as ids %q", req, ids)
	}
}

func FuzzDecodeUpgrade(f *testing.F) {
	fieldSeeds(f, map[string]any{"agent_ids": []string{"0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"}, "version": "1.4.2", "rollback": true})
	f.Add([]byte(`{"all_outdated":true}`))
	f.Add([]byte(`{"all_outdated":true,"rollback":true}`))
	f.Add([]byte(`{"all_outdated":false}`))
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"all_outdated":true}`))
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"version":"1.4"}`))
	f.Add([]byte(`{"agent_ids":["0191D9B2-7C1E-7C3A-9F59-0D8A1C0E5B11","0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"]}`))
	f.Fuzz(checkUpgrade)
}

func TestDecodeUpgradeBigBodies(t *testing.T) {
	for _, body := range bigHostileBodies {
		checkUpgrade(t, []byte(body))
	}
}
