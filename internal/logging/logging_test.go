package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestRequestIDOnEveryLine(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		l, err := New(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		ctx := WithRequestID(context.Background(), "req-123")
		l.With("component", "api").InfoContext(ctx, "hello")
		l.InfoContext(context.Background(), "no id")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: got %d lines", format, len(lines))
		}
		if !strings.Contains(lines[0], "req-123") || strings.Contains(lines[1], "request_id") {
			t.Fatalf("%s: request id misplaced:\n%s", format, buf.String())
		}
		if format == "json" {
			var m map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &m); err != nil || m["request_id"] != "req-123" {
				t.Fatalf("json line %q: %v", lines[0], err)
			}
		}
	}
}

func TestBadConfig(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "xml", "info"); err == nil {
		t.Fatal("format xml accepted")
	}
	if _, err := New(&bytes.Buffer{}, "text", "loud"); err == nil {
		t.Fatal("level loud accepted")
	}
}
