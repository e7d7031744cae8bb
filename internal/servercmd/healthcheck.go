package servercmd

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Healthcheck is `redflag-server healthcheck`: GET /health on the local
// server and exit 0 when it answers 200. It is the container image's
// HEALTHCHECK, which has no curl. The address comes from REDFLAG_LISTEN
// (and https from REDFLAG_TLS_CERT), the same variables the server reads.
func Healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthcheck", "[--url URL | --listen ADDR [--tls-cert FILE]] [--timeout D]", stderr)
	listen := fs.String("listen", envOr(getenv, "REDFLAG_LISTEN", ":8080"), "the server's listen address (env REDFLAG_LISTEN)")
	cert := fs.String("tls-cert", getenv("REDFLAG_TLS_CERT"), "when set, the server speaks HTTPS (env REDFLAG_TLS_CERT)")
	target := fs.String("url", "", "probe this URL instead of /health on the listen address")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	const me = "redflag-server healthcheck"
	u := *target
	local := false
	if u == "" {
		var err error
		if u, err = probeURL(*listen, *cert != ""); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", me, err)
			return ExitUsage
		}
		local = true
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a probe of this machine never goes through a proxy
	if local {
		// The certificate names the public host, not the local address
		// probed here; the probe sends nothing secret and only reads a status.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec
	}
	client := &http.Client{Timeout: *timeout, Transport: tr}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %q is not a URL: %v\n", me, u, err)
		return ExitUsage
	}
	res, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s did not answer: %v\n", me, u, err)
		return ExitFailure
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "%s: %s answered %s: %s\n", me, u, res.Status, strings.TrimSpace(string(body)))
		return ExitFailure
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", u, strings.TrimSpace(string(body)))
	return ExitOK
}

// probeURL turns a listen address into the URL of /health on this machine:
// a wildcard host (":8080", "0.0.0.0:8080", "[::]:8080") becomes 127.0.0.1.
func probeURL(listen string, https bool) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "", fmt.Errorf("cannot probe listen address %q: it must look like :8080 or 127.0.0.1:8080", listen)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/health", nil
}
