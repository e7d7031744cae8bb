package api

// Fuzz targets for every JSON request decoder of the API and for the list
// paging parameters. Each target feeds arbitrary bytes through
// decodeJSONReader (behind http.MaxBytesReader, as decodeJSON does) and then
// through the exact validation function the handler calls, and checks the
// SPEC §3 contract: never a panic; a refusal is an *apiError with status
// 400 or 413, a snake_case code and a message; an accepted body holds only
// valid UTF-8 text without NUL bytes.
//
// Run one with: go test -run '^$' -fuzz '^FuzzDecodeRegister$' ./internal/api
// (make fuzz runs them all briefly).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
)

var snakeCode = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

const fuzzMachineID = "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea"

// hostileSeeds are bodies every decoder must refuse cleanly, whatever its type.
var hostileSeeds = []string{
	``,
	` `,
	`null`,
	`true`,
	`0`,
	`"x"`,
	`[]`,
	`[{}]`,
	`{`,
	`}`,
	`{"a":}`,
	`{} {}`,
	`{}garbage`,
	`{}` + "\x00",
	"\xef\xbb\xbf{}", // byte order mark
	`{"unknown_field":1}`,
	`{"__proto__":{}}`,
	`{"a":1,"a":2}`,
	`{"x":"` + strings.Repeat(`\u0000`, 64) + `"}`,
	`{"x":"\ud800"}`,
	"{\"x\":\"\xff\xfe\xc0\xaf\"}",
	`{"x":1e999}`,
	`{"x":-0}`,
	`{"x":9223372036854775808}`,
	`{"x":` + strings.Repeat(`[`, 64) + strings.Repeat(`]`, 64) + `}`,
	strings.Repeat(`{"x":`, 32) + `1` + strings.Repeat(`}`, 32),
}

// bigHostileBodies are too large to seed a fuzz corpus with (the engine
// spends its time minimising them); TestDecodeBigBodies runs them through
// every decoder instead.
var bigHostileBodies = []string{
	`{"x":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`, // past encoding/json's depth limit
	strings.Repeat(`{"x":`, 10001) + `1` + strings.Repeat(`}`, 10001),
	`{"x":"` + strings.Repeat("A", MaxBodyBytes) + `"}`, // over the limit
	`{}` + strings.Repeat(" ", MaxBodyBytes),            // over the limit after a complete object
	strings.Repeat(" ", MaxBodyBytes-2) + `{}`,          // exactly at the limit
}

// fieldSeeds puts hostile values into each named field of an otherwise
// valid body, so the fuzzer starts from bodies that get past the decoder.
func fieldSeeds(f *testing.F, valid map[string]any) {
	f.Helper()
	b, err := json.Marshal(valid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, s := range hostileSeeds {
		f.Add([]byte(s))
	}
	hostileValues := []any{
		"", " ", "\x00", "a\x00b", "\u202e", "\ufffd", "\ufeff", "line\nbreak", "tab\there", "\x1b[31mred",
		"<script>alert(1)</script>", "'; DROP TABLE agents; --", strings.Repeat("é", 300),
		strings.Repeat("x", 1025), nil, 1, -1, 1.5, 1e308, true, []any{}, map[string]any{},
	}
	for name := range valid {
		for _, v := range hostileValues {
			m := make(map[string]any, len(valid))
			for k, x := range valid {
				m[k] = x
			}
			m[name] = v
			b, err := json.Marshal(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
		// Raw escapes json.Marshal would never write.
		f.Add([]byte(strings.Replace(string(mustJSON(f, valid)), `"`+name+`":`, `"`+name+`":"\ud800\u0000",`+`"_":`, 1)))
		f.Add([]byte(strings.Replace(string(mustJSON(f, valid)), `"`+name+`":`, `"`+name+`":"\xff\u0000", "`+name+`x":`, 1)))
	}
}

func mustJSON(f *testing.F, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// checkRefusal checks the shape of an error answer. extra lists statuses a
// route may answer besides 400 and 413 (with the code it must use).
func checkRefusal(t *testing.T, e *apiError, extra map[int]string) {
	t.Helper()
	if want, ok := extra[e.Status]; ok {
		if e.Code != want {
			t.Fatalf("status %d with code %q, want %q", e.Status, e.Code, want)
		}
	} else if e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d (%s), want 400 or 413", e.Status, e.Error())
	}
	if !snakeCode.MatchString(e.Code) {
		t.Fatalf("error code %q is not snake_case", e.Code)
	}
	if strings.TrimSpace(e.Message) == "" {
		t.Fatalf("error %q has no message", e.Code)
	}
	if !utf8.ValidString(e.Message) {
		t.Fatalf("error message %q is not valid UTF-8", e.Message)
	}
}

// checkText walks v and fails on any string that is not valid UTF-8 or that
// holds a NUL. Fields named in secrets (JSON names) are only checked for
// UTF-8: passwords are opaque secrets that are hashed, never stored, shown
// or logged, and the handlers deliberately accept any bytes in them.
func checkText(t *testing.T, path string, v reflect.Value, secrets map[string]bool) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if !utf8.ValidString(s) {
			t.Fatalf("accepted %s is not valid UTF-8: %q", path, s)
		}
		if !secrets[path] && strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("accepted %s holds a NUL: %q", path, s)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			name := strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0]
			if name == "" {
				name = v.Type().Field(i).Name
			}
			checkText(t, strings.TrimPrefix(path+"."+name, "."), v.Field(i), secrets)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			checkText(t, path, v.Index(i), secrets)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			checkText(t, path, v.Elem(), secrets)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			checkText(t, path+"{key}", it.Key(), secrets)
			checkText(t, path, it.Value(), secrets)
		}
	}
}

// decodeCase decodes data into a fresh T as decodeJSON does, with the
// production limit and, for longer inputs, with a limit the body exceeds
// (so the 413 path is fuzzed too), then validates an accepted body. It
// returns the accepted value, or false.
func decodeCase[T any](t *testing.T, data []byte, limit int64, validate func(*T) *apiError,
	extra map[int]string, secrets map[string]bool) (T, bool) {
	t.Helper()
	if len(data) > 16 {
		small := int64(len(data) / 2)
		var v T
		if e := decodeJSONReader(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(data)), small), small, &v); e != nil {
			checkRefusal(t, e, nil)
		} else {
			t.Fatalf("a %d-byte body was accepted under a %d-byte limit", len(data), small)
		}
	}
	var v T
	e := decodeJSONReader(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(data)), limit), limit, &v)
	if e != nil {
		checkRefusal(t, e, nil)
		if e.Status == http.StatusRequestEntityTooLarge && int64(len(data)) <= limit {
			t.Fatalf("413 for a %d-byte body under the %d-byte limit", len(data), limit)
		}
		return v, false
	}
	if validate != nil {
		if e := validate(&v); e != nil {
			checkRefusal(t, e, extra)
			return v, false
		}
	}
	checkText(t, "", reflect.ValueOf(v), secrets)
	return v, true
}

// The per-type checks, shared by the fuzz targets and TestDecodeBigBodies.

func checkRegister(t *testing.T, data []byte) {
	req, ok := decodeCase(t, data, MaxBodyBytes, func(r *protocol.RegisterRequest) *apiError { return validateRegister(*r) }, nil, nil)
	if ok && (!protocol.ValidMachineID(req.MachineID) || !validOSType(req.OSType) || strings.TrimSpace(req.Hostname) == "") {
		t.Fatalf("accepted an invalid registration: %+v", req)
	}
}

func checkRenew(t *testing.T, data []byte) {
	// A malformed agent id is answered like an unknown agent (401), on purpose.
	decodeCase(t, data, MaxBodyBytes, func(r *protocol.RenewRequest) *apiError { return validateRenew(*r) },
		map[int]string{http.StatusUnauthorized: "unauthorized"}, nil)
}

func checkSystemReport(t *testing.T, data []byte) {
	rep, ok := decodeCase(t, data, MaxBodyBytes, func(r *protocol.SystemReport) *apiError { return validateSystemReport(*r) }, nil, nil)
	if ok {
		// The handler stores its own re-encoding; it must always succeed.
		if _, err := json.Marshal(rep); err != nil {
			t.Fatalf("re-encoding an accepted report: %v", err)
		}
	}
}

func checkLogin(t *testing.T, data []byte) {
	decodeCase(t, data, MaxBodyBytes, func(r *loginRequest) *apiError { return validateLogin(*r) }, nil, map[string]bool{"password": true})
}

func checkSetup(t *testing.T, data []byte) {
	decodeCase(t, data, MaxBodyBytes, func(r *setupRequest) *apiError { return validateSetup(*r) }, nil, map[string]bool{"password": true})
}

func checkPassword(t *testing.T, data []byte) {
	// changePassword makes no field checks of its own: auth.Service checks
	// the current password, then the policy of the new one.
	decodeCase[passwordRequest](t, data, MaxBodyBytes, nil, nil, map[string]bool{"current_password": true, "new_password": true})
}

func checkAPIToken(t *testing.T, data []byte) {
	req, ok := decodeCase(t, data, MaxBodyBytes, func(r *apiTokenRequest) *apiError { return validateAPIToken(*r) }, nil, nil)
	if ok && req.ExpiresInSeconds != 0 && (req.ExpiresInSeconds < 60 || req.ExpiresInSeconds > maxTTLSeconds) {
		t.Fatalf("accepted expires_in_seconds %d", req.ExpiresInSeconds)
	}
}

func checkRegistrationToken(t *testing.T, data []byte) {
	req, ok := decodeCase(t, data, MaxBodyBytes, validateRegistrationToken, nil, nil)
	if ok && (req.Seats < 1 || req.Seats > maxSeats || req.ExpiresInSeconds < 60 || req.ExpiresInSeconds > maxRegTTL) {
		t.Fatalf("accepted %+v", req)
	}
}

func checkRebind(t *testing.T, data []byte) {
	req, ok := decodeCase(t, data, MaxBodyBytes, func(r *rebindRequest) *apiError { return validateRebind(*r) }, nil, nil)
	if ok && !protocol.ValidMachineID(req.MachineID) {
		t.Fatalf("accepted machine id %q", req.MachineID)
	}
}

// TestDecodeBigBodies runs the bodies too large for a fuzz corpus (deep
// nesting, bodies over and at the size limit) through every decoder.
func TestDecodeBigBodies(t *testing.T) {
	checks := map[string]func(*testing.T, []byte){
		"register": checkRegister, "renew": checkRenew, "system_report": checkSystemReport, "login": checkLogin,
		"setup": checkSetup, "password": checkPassword, "api_token": checkAPIToken,
		"registration_token": checkRegistrationToken, "rebind": checkRebind,
		"commands": checkCommands, "command_result": checkCommandResult,
		"update_report": checkUpdateReport, "update_ids": checkUpdateIDs, "approve": checkApprove,
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) {
			for _, body := range bigHostileBodies {
				check(t, []byte(body))
			}
			// Over the limit is 413 whatever the body holds.
			var v struct{}
			big := []byte(`{"x":"` + strings.Repeat("A", MaxBodyBytes) + `"}`)
			e := decodeJSONReader(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(big)), MaxBodyBytes), MaxBodyBytes, &v)
			if e == nil || e.Status != http.StatusRequestEntityTooLarge || e.Code != "body_too_large" {
				t.Fatalf("over-limit body: %v", e)
			}
		})
	}
}

func FuzzDecodeRegister(f *testing.F) {
	fieldSeeds(f, map[string]any{"registration_token": "rf_reg_0123456789abcdef", "hostname": "web-01.example.com",
		"os_type": "linux", "os_version": "Debian 12", "os_arch": "amd64", "agent_version": "0.1.0", "machine_id": fuzzMachineID})
	f.Add([]byte(`{"registration_token":"t","hostname":"h","os_type":"LINUX","machine_id":"` + strings.ToUpper(fuzzMachineID) + `"}`))
	f.Add([]byte(`{"registration_token":"t","hostname":"h","os_type":"linux","machine_id":"` + fuzzMachineID + `\n"}`))
	f.Add([]byte(`{"registration_token":"t","hostname":"h","os_type":"linux","machine_id":"` + fuzzMachineID[:63] + `g"}`))
	f.Fuzz(checkRegister)
}

func FuzzDecodeRenew(f *testing.F) {
	fieldSeeds(f, map[string]any{"agent_id": "0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11", "refresh_token": "rf_ref_0123456789abcdef"})
	f.Add([]byte(`{"agent_id":"{0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11}","refresh_token":"x"}`))
	f.Add([]byte(`{"agent_id":"urn:uuid:0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11","refresh_token":"x"}`))
	f.Add([]byte(`{"agent_id":"not-a-uuid","refresh_token":"x"}`))
	f.Fuzz(checkRenew)
}

func FuzzDecodeSystemReport(f *testing.F) {
	fieldSeeds(f, map[string]any{"os_type": "linux", "os_version": "Debian 12", "os_arch": "amd64", "kernel": "6.1.0-18-amd64",
		"hostname": "web-01", "cpu_model": "AMD EPYC 7B13", "cpu_cores": 8, "memory_bytes": 17179869184, "uptime_seconds": 86400,
		"disks":           []any{map[string]any{"mount": "/", "filesystem": "ext4", "total_bytes": 1 << 34, "used_bytes": 1 << 33}},
		"reboot_required": false, "package_managers": []string{"apt", "snap"}})
	f.Add([]byte(`{"disks":[{"mount":"","filesystem":"ext4"}]}`))
	f.Add([]byte(`{"disks":[{"mount":"/","total_bytes":-1}]}`))
	f.Add([]byte(`{"disks":[{"mount":"/","bogus":1}]}`))
	f.Add([]byte(`{"disks":null,"package_managers":[null,""]}`))
	f.Add([]byte(`{"package_managers":["` + strings.Repeat(`a","`, 70) + `a"]}`))
	f.Add([]byte(`{"cpu_cores":-1}`))
	f.Add([]byte(`{"memory_bytes":1.5}`))
	f.Fuzz(checkSystemReport)
}

func FuzzDecodeLogin(f *testing.F) {
	fieldSeeds(f, map[string]any{"username": "admin", "password": "correct horse battery staple", "totp": "123456"})
	f.Add([]byte(`{"username":"admin","password":""}`))
	f.Add([]byte(`{"username":"admin","password":"` + strings.Repeat("p", 257) + `"}`))
	f.Fuzz(checkLogin)
}

func FuzzDecodeSetup(f *testing.F) {
	fieldSeeds(f, map[string]any{"setup_token": "rf_setup_0123456789abcdef", "username": "admin", "password": "correct horse battery staple"})
	f.Fuzz(checkSetup)
}

func FuzzDecodePassword(f *testing.F) {
	fieldSeeds(f, map[string]any{"current_password": "correct horse battery staple", "new_password": "another long passphrase"})
	f.Fuzz(checkPassword)
}

func FuzzDecodeAPIToken(f *testing.F) {
	fieldSeeds(f, map[string]any{"name": "ci deploy", "expires_in_seconds": 86400})
	f.Add([]byte(`{"name":"x","expires_in_seconds":59}`))
	f.Add([]byte(`{"name":"x","expires_in_seconds":-9223372036854775808}`))
	f.Add([]byte(`{"name":"x","expires_in_seconds":9223372036854775807}`))
	f.Fuzz(checkAPIToken)
}

func FuzzDecodeRegistrationToken(f *testing.F) {
	fieldSeeds(f, map[string]any{"seats": 10, "expires_in_seconds": 3600, "note": "office laptops"})
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"seats":-1}`))
	f.Add([]byte(`{"seats":100001}`))
	f.Add([]byte(`{"seats":9223372036854775807,"expires_in_seconds":-1}`))
	f.Fuzz(checkRegistrationToken)
}

func FuzzDecodeRebind(f *testing.F) {
	fieldSeeds(f, map[string]any{"machine_id": fuzzMachineID})
	f.Add([]byte(`{"machine_id":"` + strings.ToUpper(fuzzMachineID) + `"}`))
	f.Add([]byte(`{"machine_id":"` + fuzzMachineID + `0"}`))
	f.Fuzz(checkRebind)
}

// The command routes (SPEC §5) decode two more bodies.

func checkCommands(t *testing.T, data []byte) {
	var ids []string
	var params []byte
	req, ok := decodeCase(t, data, MaxReportBodyBytes, func(r *createCommandsRequest) *apiError {
		var e *apiError
		ids, params, e = validateCommandRequest(*r)
		return e
	}, nil, nil)
	if !ok {
		return
	}
	if len(ids) == 0 || len(ids) > len(req.AgentIDs) || !json.Valid(params) || params[0] != '{' {
		t.Fatalf("accepted %+v as ids %q, params %q", req, ids, params)
	}
}

func checkCommandResult(t *testing.T, data []byte) {
	res, ok := decodeCase(t, data, MaxBodyBytes, func(r *protocol.CommandResult) *apiError { return validateResult(*r) }, nil, nil)
	if ok && (len(res.Output) > protocol.MaxResultOutput || (len(res.Details) > 0 && !json.Valid(res.Details))) {
		t.Fatalf("accepted result %+v", res)
	}
}

func FuzzDecodeCommands(f *testing.F) {
	fieldSeeds(f, map[string]any{"agent_ids": []string{"0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"}, "type": "scan_updates",
		"params": map[string]any{"scanners": []string{"apt"}}})
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11","0191D9B2-7C1E-7C3A-9F59-0D8A1C0E5B11"],"type":"reboot","params":{"delay_seconds":60}}`))
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"type":"enable_heartbeat","params":{"interval_seconds":5,"duration_seconds":60}}`))
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"type":"collect_specs","params":null}`))
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"type":"collect_specs","params":{"x":1}}`))
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"type":"scan_updates","params":[1]}`))
	f.Add([]byte(`{"agent_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"type":"install_updates","params":{"<a>":"&"}}`))
	f.Add([]byte(`{"agent_ids":["urn:uuid:0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"type":"reboot"}`))
	f.Add([]byte(`{"agent_ids":[],"type":"rotate_key"}`))
	f.Fuzz(checkCommands)
}

func FuzzDecodeCommandResult(f *testing.F) {
	fieldSeeds(f, map[string]any{"status": "succeeded", "exit_code": 0, "output": "3 packages upgraded\n",
		"started_at": "2026-01-02T03:04:05Z", "finished_at": "2026-01-02T03:05:05Z", "details": map[string]any{"upgraded": 3}})
	f.Add([]byte(`{"status":"failed","exit_code":-1,"output":"","details":null}`))
	f.Add([]byte(`{"status":"failed","details":[]}`))
	f.Add([]byte(`{"status":"failed","details":"x"}`))
	f.Add([]byte(`{"status":"failed","started_at":"not a time"}`))
	f.Add([]byte(`{"status":"failed","started_at":"10000-01-01T00:00:00Z"}`))
	f.Fuzz(checkCommandResult)
}

// FuzzParsePage feeds ?limit=, ?offset= and ?cursor= (and a raw query string
// around them) to parsePage: no panic, refusals are 400 invalid_query, and an
// accepted page is within bounds. A cursor the server hands out must parse
// back to the offset it encodes.
func FuzzParsePage(f *testing.F) {
	cur := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, s := range [][4]string{
		{"", "", "", ""},
		{"50", "", "", ""},
		{"1", "0", "", ""},
		{"500", "", cur("o:100"), ""},
		{"0", "", "", ""},
		{"501", "", "", ""},
		{"-1", "-1", "", ""},
		{"1e3", "0x10", "", ""},
		{"99999999999999999999", "99999999999999999999", "", ""},
		{"", "1073741824", "", ""},
		{"", "1073741825", "", ""},
		{"", "", cur("o:-1"), ""},
		{"", "", cur("o:1073741825"), ""},
		{"", "", cur("x:1"), ""},
		{"", "", cur("o:"), ""},
		{"", "", "o:1", ""},
		{"", "", "!!!", ""},
		{"", "", cur("o:1") + "=", ""},
		{"", "", cur("o:+1"), ""},
		{"", "", "", "limit=1&limit=2"},
		{"", "", "", "limit=%zz"},
		{"", "", "", "cursor=%00&offset=%00"},
		{"", "", "", ";;;&&&==="},
		{" 10", "10 ", cur("o:\x00"), ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, limit, offset, cursor, raw string) {
		q := url.Values{}
		for k, v := range map[string]string{"limit": limit, "offset": offset, "cursor": cursor} {
			if v != "" {
				q.Set(k, v)
			}
		}
		rq := q.Encode()
		if raw != "" {
			rq = raw + "&" + rq
		}
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/api/v1/agents", RawQuery: rq}}
		p, e := parsePage(r)
		if e != nil {
			checkRefusal(t, e, nil)
			if e.Status != http.StatusBadRequest || e.Code != "invalid_query" {
				t.Fatalf("refusal %d %s, want 400 invalid_query", e.Status, e.Code)
			}
			return
		}
		if p.Limit < 1 || p.Limit > 500 || p.Offset < 0 || p.Offset > 1<<30 {
			t.Fatalf("accepted out-of-bounds page %+v from %q", p, rq)
		}
		// Round trip: the next cursor for a full page must parse to the next offset.
		total := p.Offset + 2*p.Limit
		if next := nextCursor(p, p.Limit, total); next != nil && p.Offset+p.Limit <= 1<<30 {
			p2, e := parsePage(&http.Request{URL: &url.URL{RawQuery: "cursor=" + url.QueryEscape(*next) + "&limit=" + strconv.Itoa(p.Limit)}})
			if e != nil || p2.Offset != p.Offset+p.Limit {
				t.Fatalf("cursor %q for offset %d parsed to %+v, %v", *next, p.Offset+p.Limit, p2, e)
			}
		}
	})
}

// The update routes decode a scan report and bodies of update ids.

func checkUpdateReport(t *testing.T, data []byte) {
	var rep store.UpdateReport
	body, ok := decodeCase(t, data, MaxReportBodyBytes, func(b *updateReportBody) *apiError {
		var e *apiError
		rep, e = validateUpdateReport(b)
		return e
	}, nil, nil)
	if !ok {
		return
	}
	if !slices.Contains(protocol.PackageTypes, rep.Scanner) || rep.ScannedAt.IsZero() {
		t.Fatalf("accepted report %+v", rep)
	}
	switch {
	case rep.UnchangedHash != "":
		if rep.Full || len(rep.Errors) > 0 || len(rep.UnchangedHash) != 64 {
			t.Fatalf("accepted hash-only report %+v", rep)
		}
	case rep.Full:
		// The hash covers the updates' bytes exactly as received.
		if rep.Hash != protocol.UpdatesHash(body.Updates) || len(rep.Updates) > MaxReportUpdates {
			t.Fatalf("full report hash %s over %q", rep.Hash, body.Updates)
		}
		seen := map[string]bool{}
		for _, u := range rep.Updates {
			if u.PackageType != rep.Scanner || !slices.Contains(protocol.Severities, u.Severity) || seen[u.PackageName] ||
				protocol.CheckText(u.PackageName, maxPackageNameLen, false) != nil || strings.TrimSpace(u.PackageName) == "" || u.SizeBytes < 0 {
				t.Fatalf("accepted update %+v", u)
			}
			seen[u.PackageName] = true
			for _, s := range append(append([]string{u.CurrentVersion, u.AvailableVersion, u.Source}, u.CVEIDs...), mapStrings(u.Metadata)...) {
				if protocol.CheckText(s, 1024, false) != nil {
					t.Fatalf("accepted text %q", s)
				}
			}
		}
	default:
		if len(rep.Errors) == 0 {
			t.Fatalf("accepted an empty report %+v", rep)
		}
	}
	for _, m := range rep.Errors {
		if protocol.CheckText(m, 4096, true) != nil {
			t.Fatalf("accepted error message %q", m)
		}
	}
}

func mapStrings(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

func checkIDs(t *testing.T, raw []string) {
	ids, e := validateUpdateIDs(raw)
	if e != nil {
		checkRefusal(t, e, nil)
		return
	}
	if len(ids) == 0 || len(ids) > MaxUpdateIDs || len(ids) > len(raw) {
		t.Fatalf("accepted ids %q as %q", raw, ids)
	}
	for _, id := range ids {
		if len(id) != 36 || strings.ToLower(id) != id {
			t.Fatalf("accepted id %q", id)
		}
	}
}

func checkUpdateIDs(t *testing.T, data []byte) {
	if req, ok := decodeCase[updateIDsRequest](t, data, MaxBodyBytes, nil, nil, nil); ok {
		checkIDs(t, req.UpdateIDs)
	}
}

func checkApprove(t *testing.T, data []byte) {
	if req, ok := decodeCase[approveRequest](t, data, MaxBodyBytes, nil, nil, nil); ok {
		checkIDs(t, req.UpdateIDs)
	}
}

func FuzzDecodeUpdateReport(f *testing.F) {
	upd := map[string]any{"package_type": "apt", "package_name": "openssl", "current_version": "3.0.2-0ubuntu1.10",
		"available_version": "3.0.2-0ubuntu1.12", "severity": "critical", "source": "jammy-security", "cve_ids": []string{"CVE-2023-0464"},
		"size_bytes": 1234, "requires_reboot": false, "metadata": map[string]string{"arch": "amd64"}}
	fieldSeeds(f, map[string]any{"scanner": "apt", "scanned_at": "2026-11-25T10:00:00Z", "updates": []any{upd}, "interval_seconds": 21600})
	fieldSeeds(f, upd)
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","unchanged_hash":"` + strings.Repeat("ab", 32) + `"}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":null,"unchanged_hash":"` + strings.Repeat("AB", 32) + `"}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[],"unchanged_hash":"` + strings.Repeat("ab", 32) + `"}`))
	f.Add([]byte(`{"scanner":"dnf","scanned_at":"2026-11-25T10:00:00Z","errors":[{"scanner":"dnf","message":"dnf: lock\nheld"}]}`))
	f.Add([]byte(`{"scanner":"dnf","scanned_at":"2026-11-25T10:00:00Z","errors":[{"scanner":"apt","message":"x"}]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":{}}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[ {"package_type":"apt","package_name":"a","severity":"low"} ]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[{"package_type":"apt","package_name":"a","severity":"low"},` +
		`{"package_type":"apt","package_name":"a","severity":"low"}]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[{"package_type":"dnf","package_name":"a","severity":"low"}]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[{"package_type":"apt","package_name":"a","severity":"urgent"}]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[{"package_type":"apt","package_name":"a","severity":"low","extra":1}]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[{"package_type":"apt","package_name":"a","severity":"low","metadata":{"k":1}}]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"","updates":[]}`))
	f.Add([]byte(`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","interval_seconds":-1,"updates":[]}`))
	f.Fuzz(checkUpdateReport)
}

func FuzzDecodeUpdateIDs(f *testing.F) {
	fieldSeeds(f, map[string]any{"update_ids": []string{"0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"}})
	f.Add([]byte(`{"update_ids":[]}`))
	f.Add([]byte(`{"update_ids":["0191D9B2-7C1E-7C3A-9F59-0D8A1C0E5B11","0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"]}`))
	f.Add([]byte(`{"update_ids":["{0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11}"]}`))
	f.Add([]byte(`{"update_ids":[null]}`))
	f.Fuzz(checkUpdateIDs)
}

func FuzzDecodeApprove(f *testing.F) {
	fieldSeeds(f, map[string]any{"update_ids": []string{"0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"}, "dry_run": true})
	f.Add([]byte(`{"update_ids":["0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"],"dry_run":"yes"}`))
	f.Fuzz(checkApprove)
}

// TestReportHashIsOverTheBytesSent: the hash of a full report is the SHA-256
// of the "updates" value exactly as the agent wrote it, whitespace included.
func TestReportHashIsOverTheBytesSent(t *testing.T) {
	updates := "[ {\"package_type\":\"apt\", \"package_name\":\"a\",\"severity\":\"low\"} ]"
	body := `{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":` + updates + `}`
	var b updateReportBody
	if e := decodeJSONReader(strings.NewReader(body), MaxReportBodyBytes, &b); e != nil {
		t.Fatal(e)
	}
	rep, e := validateUpdateReport(&b)
	if e != nil {
		t.Fatal(e)
	}
	if rep.Hash != protocol.UpdatesHash([]byte(updates)) {
		t.Fatalf("hash %s is not over the bytes sent", rep.Hash)
	}
}

// TestInstallOutcome: result details are read leniently and cleaned.
func TestInstallOutcome(t *testing.T) {
	if installOutcome(nil) != nil || installOutcome(json.RawMessage("null")) != nil || installOutcome(json.RawMessage(`{"results":"x"}`)) != nil {
		t.Fatal("details that are not install details gave an outcome")
	}
	o := installOutcome(json.RawMessage(`{"dry_run":true,"other":1,"extras":[{"package_name":"lib\u0000ssl\u001b[31m","action":"install"}],` +
		`"results":[{"update_id":"not-a-uuid","status":"installed"},{"update_id":"0191D9B2-7C1E-7C3A-9F59-0D8A1C0E5B11","status":"failed",` +
		`"message":"line1\nline2\u0000"}],"reboot_required":true}`))
	if o == nil || !o.DryRun || !o.RebootRequired || !o.HasExtras || len(o.Results) != 1 ||
		o.Results[0].UpdateID != "0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11" || o.Results[0].Message != "line1\nline2 " {
		t.Fatalf("outcome %+v", o)
	}
	if strings.Contains(string(o.Extras), `\u0000`) || strings.Contains(string(o.Extras), `\u001b`) {
		t.Fatalf("extras kept control characters: %s", o.Extras)
	}
}
