package client

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestResolveURL(t *testing.T) {
	c, err := New("https://rf.example.com/prefix/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "/api/v1/downloads/agent/linux/amd64", want: "https://rf.example.com/prefix/api/v1/downloads/agent/linux/amd64"},
		{in: "/x?y=1", want: "https://rf.example.com/prefix/x?y=1"},
		{in: "https://cdn.example.com/a/b#frag", want: "https://cdn.example.com/a/b"},
		{in: "http://10.0.0.1:8080/x", want: "http://10.0.0.1:8080/x"},
		{in: "", bad: true},
		{in: "//evil.example.com/x", bad: true},
		{in: "relative/path", bad: true},
		{in: "file:///etc/passwd", bad: true},
		{in: "ftp://x/y", bad: true},
		{in: "https://user:pw@x/y", bad: true},
		{in: "https:///nohost", bad: true},
	}
	for _, tt := range tests {
		got, err := c.ResolveURL(tt.in)
		if tt.bad != (err != nil) || (!tt.bad && got != tt.want) {
			t.Errorf("ResolveURL(%q) = %q, %v; want %q (error: %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestDownload(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1000)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("a download must not carry the agent's credentials")
		}
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 10 {
			_, _ = w.Write(body)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write(body[:10])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("GET /missing", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"not_found","message":"No binary."}}`, http.StatusNotFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.SetCredentials("a", "tok")
	ctx := context.Background()

	var buf bytes.Buffer
	n, err := c.Download(ctx, "/ok", &buf, 1000, time.Second)
	if err != nil || n != 1000 || !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("Download /ok = %d, %v", n, err)
	}
	// Content-Length over the limit: refused before reading.
	if _, err := c.Download(ctx, srv.URL+"/ok", &bytes.Buffer{}, 999, time.Second); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Download over the announced limit: %v, want ErrTooLarge", err)
	}
	// No Content-Length: cut while copying.
	if _, err := c.Download(ctx, "/chunked", &bytes.Buffer{}, 5000, time.Second); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Download of a chunked body over the limit: %v, want ErrTooLarge", err)
	}
	start := time.Now()
	if _, err := c.Download(ctx, "/slow", &bytes.Buffer{}, 5000, 200*time.Millisecond); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("Download of a stalled body: %v after %s, want a timeout", err, time.Since(start))
	}
	if _, err := c.Download(ctx, "/missing", &bytes.Buffer{}, 5000, time.Second); StatusCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "No binary") {
		t.Errorf("Download of a missing file: %v", err)
	}
}
