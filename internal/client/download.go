package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrTooLarge means a download was larger than the caller allows.
var ErrTooLarge = errors.New("client: the download is larger than allowed")

// ResolveURL turns the url of a command (absolute http or https, or a
// path beginning with "/", taken relative to the server URL, the way API
// paths are) into an absolute URL. User info, other schemes and relative
// paths without a leading "/" are refused.
func (c *Client) ResolveURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("the URL is empty")
	}
	if strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//") {
		p, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("the path %q cannot be parsed: %v", raw, err)
		}
		if p.Host != "" || p.Scheme != "" {
			return "", fmt.Errorf("the path %q is not a plain path", raw)
		}
		return c.base.String() + p.EscapedPath() + queryOf(p), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("the URL %q cannot be parsed: %v", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("the URL %q must be http(s) with a host, or a path starting with /", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("the URL %q must not carry user info", raw)
	}
	u.Fragment = ""
	return u.String(), nil
}

func queryOf(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	return "?" + u.RawQuery
}

// Download fetches raw (see ResolveURL) with a plain GET, without the
// agent's credentials (downloads are public and signed), and copies the body
// to w. It refuses an answer other than 200, and a body over limit bytes
// (checked against Content-Length first, then while copying); timeout
// bounds the whole transfer. It returns the number of bytes written.
func (c *Client) Download(ctx context.Context, raw string, w io.Writer, limit int64, timeout time.Duration) (int64, error) {
	target, err := c.ResolveURL(raw)
	if err != nil {
		return 0, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, fmt.Errorf("client: building the download request: %w", err)
	}
	req.Header.Set("User-Agent", "redflag-agent/"+c.agentVer)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, &NetworkError{Method: http.MethodGet, Path: redactedPath(target), Err: stripURL(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, readAPIError(http.MethodGet, redactedPath(target), resp)
	}
	if limit > 0 && resp.ContentLength > limit {
		return 0, fmt.Errorf("%w: %d bytes announced, at most %d accepted", ErrTooLarge, resp.ContentLength, limit)
	}
	src := io.Reader(resp.Body)
	if limit > 0 {
		src = io.LimitReader(resp.Body, limit+1)
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return n, &NetworkError{Method: http.MethodGet, Path: redactedPath(target), Err: fmt.Errorf("reading the download: %w", stripURL(err))}
	}
	if limit > 0 && n > limit {
		return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, &NetworkError{Method: http.MethodGet, Path: redactedPath(target), Err: fmt.Errorf("the download ended after %d of %d bytes", n, resp.ContentLength)}
	}
	return n, nil
}

// redactedPath names a download in errors without its query (which may
// carry a token).
func redactedPath(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return "(download)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}
