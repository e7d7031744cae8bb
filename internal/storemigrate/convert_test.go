package storemigrate

import (
	"strings"
	"testing"
	"time"
)

func TestConvert(t *testing.T) {
	utc := time.Date(2026, 11, 25, 13, 14, 15, 123456000, time.UTC)
	cases := []struct {
		in   any
		k    kind
		want any
	}{
		{nil, kindBool, nil},
		{int64(1), kindBool, true},
		{int64(0), kindBool, false},
		{"true", kindBool, true},
		{[]byte("0"), kindBool, false},
		{true, kindInt, int64(1)},
		{false, kindInt, int64(0)},
		{int32(7), kindInt, int64(7)},
		{"42", kindInt, int64(42)},
		{float64(3), kindInt, int64(3)},
		{int64(2), kindFloat, float64(2)},
		{[]byte(`{"a": 1}`), kindText, `{"a": 1}`},
		{int64(300), kindText, "300"},
		{"x", kindBytes, []byte("x")},
		{utc.In(time.FixedZone("CET", 3600)), kindTime, utc},
		{"2026-11-25 13:14:15.123456+00:00", kindTime, utc},
		{"2026-11-25 14:14:15.123456+01:00", kindTime, utc},
		{"2026-11-25T13:14:15.123456Z", kindTime, utc},
		{"2026-11-25 13:14:15.123456", kindTime, utc},
		{"2026-11-25 13:14:15.123456 +0000 UTC", kindTime, utc},
		{"2026-11-25 13:14:15.123456 +0000 UTC m=+0.001", kindTime, utc},
		{int64(1764076455), kindTime, time.Unix(1764076455, 0).UTC()},
		{`{"b":1,"a":[1,2]}`, kindJSON, `{"b":1,"a":[1,2]}`},
		{[]byte(`[]`), kindJSON, `[]`},
		{int64(5), kindJSON, `5`},
		{"anything", kindAny, "anything"},
	}
	for _, c := range cases {
		got, err := convert(c.in, c.k)
		if err != nil {
			t.Errorf("convert(%#v, %s): %v", c.in, c.k, err)
			continue
		}
		switch w := c.want.(type) {
		case time.Time:
			if g, ok := got.(time.Time); !ok || !g.Equal(w) || g.Location() != time.UTC {
				t.Errorf("convert(%#v, %s) = %#v, want %v in UTC", c.in, c.k, got, w)
			}
		case []byte:
			if g, ok := got.([]byte); !ok || string(g) != string(w) {
				t.Errorf("convert(%#v, %s) = %#v, want %#v", c.in, c.k, got, w)
			}
		default:
			if got != c.want {
				t.Errorf("convert(%#v, %s) = %#v (%T), want %#v (%T)", c.in, c.k, got, got, c.want, c.want)
			}
		}
	}
}

func TestConvertRefuses(t *testing.T) {
	cases := []struct {
		in   any
		k    kind
		want string
	}{
		{int64(2), kindBool, "cannot store int64"},
		{"yes please", kindBool, "not a boolean"},
		{"", kindJSON, "not valid JSON"},
		{`{"a":`, kindJSON, "not valid JSON"},
		{"last tuesday", kindTime, "as a timestamp"},
		{"4.5", kindInt, "cannot store string"},
		{1.5, kindInt, "cannot store float64"},
		{time.Now(), kindInt, "cannot store time.Time"},
	}
	for _, c := range cases {
		if _, err := convert(c.in, c.k); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("convert(%#v, %s): error %v, want one containing %q", c.in, c.k, err, c.want)
		}
	}
}

func TestKinds(t *testing.T) {
	pg := map[string]kind{"boolean": kindBool, "bigint": kindInt, "integer": kindInt, "timestamp with time zone": kindTime,
		"jsonb": kindJSON, "json": kindJSON, "text": kindText, "bytea": kindBytes, "double precision": kindFloat, "tsvector": kindAny}
	for typ, want := range pg {
		if got := postgresKind(typ); got != want {
			t.Errorf("postgresKind(%q) = %s, want %s", typ, got, want)
		}
	}
	lite := map[string]kind{"DATETIME": kindTime, "TIMESTAMP": kindTime, "DATE": kindTime, "INTEGER": kindInt, "BIGINT": kindInt,
		"BOOLEAN": kindInt, "TEXT": kindText, "VARCHAR(20)": kindText, "REAL": kindFloat, "BLOB": kindAny, "": kindAny}
	for typ, want := range lite {
		if got := sqliteKind(typ); got != want {
			t.Errorf("sqliteKind(%q) = %s, want %s", typ, got, want)
		}
	}
}

func TestCopyOrder(t *testing.T) {
	mk := func(refs map[string][]string) schema {
		s := schema{tables: map[string]*table{}}
		for n, r := range refs {
			s.tables[n] = &table{name: n, refs: r}
		}
		return s
	}
	s := mk(map[string][]string{
		"users": nil, "user_tokens": {"users"}, "agents": nil, "commands": {"agents"},
		"updates": {"agents"}, "update_history": {"updates"}, "tree": {"tree"}, "audit_log": nil,
	})
	order, err := copyOrder(s, s)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	if len(order) != 8 {
		t.Fatalf("order %v has %d tables, want 8", order, len(order))
	}
	for n, tb := range s.tables {
		for _, r := range tb.refs {
			if r != n && pos[r] > pos[n] {
				t.Errorf("%s comes before %s, which it refers to: %v", n, r, order)
			}
		}
	}
	cyc := mk(map[string][]string{"a": {"b"}, "b": {"a"}, "c": nil})
	if _, err := copyOrder(cyc, cyc); err == nil || !strings.Contains(err.Error(), "a, b") {
		t.Fatalf("a cycle gave %v", err)
	}
}
