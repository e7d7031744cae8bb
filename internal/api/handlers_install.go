package api

import (
	"errors"
	"net/http"
	"path"
	"strings"

	"github.com/redflaghq/redflag/internal/agentbin"
	"github.com/redflaghq/redflag/internal/installscript"
	"github.com/redflaghq/redflag/internal/protocol"
)

// Response headers of an agent download (SPEC §4).
const (
	HeaderContentSHA256 = "X-Content-SHA256"
	HeaderSignature     = "X-Signature"
	HeaderKeyID         = "X-Key-ID"
)

// uncleanDownloadPath: p is under /install/ or /api/v1/downloads/ and is
// not in canonical form (dispatch refuses it rather than redirect).
func uncleanDownloadPath(p string) bool {
	if !strings.HasPrefix(p, "/install/") && !strings.HasPrefix(p, "/api/v1/downloads/") {
		return false
	}
	return path.Clean(p) != p
}

func platformList() string {
	s := make([]string, 0, len(agentbin.Platforms))
	for _, p := range agentbin.Platforms {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// downloadAgent serves GET (and HEAD) /api/v1/downloads/agent/{os}/{arch}:
// the binary with its SHA-256, version, signature and key id in headers.
// {os} and {arch} are only compared with the fixed platform list; the file
// name is built by agentbin, inside the binaries directory.
func (a *API) downloadAgent(w http.ResponseWriter, r *http.Request) {
	goos, arch := r.PathValue("os"), r.PathValue("arch")
	if !agentbin.Supported(goos, arch) {
		writeError(w, errf(http.StatusNotFound, "unknown_platform", "There is no agent build for that platform; agents are built for %s.", platformList()))
		return
	}
	if a.d.AgentBinaries == nil {
		writeError(w, errf(http.StatusNotFound, "agent_binary_missing", "This server serves no agent binaries."))
		return
	}
	b, err := a.d.AgentBinaries.Open(goos, arch)
	switch {
	case errors.Is(err, agentbin.ErrNotFound):
		a.d.Logger.WarnContext(r.Context(), "agent binary requested but not available", "platform", goos+"/"+arch,
			"dir", a.d.AgentBinaries.Path(), "error", err)
		writeError(w, errf(http.StatusNotFound, "agent_binary_missing",
			"This server has no agent binary for %s/%s yet; an admin can build them with `make release` and put them in REDFLAG_AGENT_BINARIES_DIR.", goos, arch))
		return
	case errors.Is(err, agentbin.ErrBadVersion):
		a.d.Logger.ErrorContext(r.Context(), "agent binary has an unusable VERSION file", "platform", goos+"/"+arch, "error", err)
		writeError(w, errf(http.StatusInternalServerError, "agent_binary_invalid",
			"The agent binary for %s/%s has an unusable VERSION file; the server log says more.", goos, arch))
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	defer b.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+agentbin.FileName(goos)+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	// The headers are part of what a cache must revalidate: the same bytes
	// under another version or key are another answer.
	h.Set("ETag", `"`+b.SHA256Hex+"-"+b.KeyID+"-"+b.Version+`"`)
	// Spelled as in SPEC §4 (Set would canonicalize to X-Content-Sha256).
	h[HeaderContentSHA256] = []string{b.SHA256Hex}
	h[protocol.HeaderAgentVersion] = []string{b.Version}
	h[HeaderSignature] = []string{b.Signature}
	h[HeaderKeyID] = []string{b.KeyID}
	http.ServeContent(w, r, "", b.ModTime, b.File)
}

// installScript serves GET /install/{platform}?token=&arch=&action=: the
// install script of that platform, with the server URL and the token
// inside as quoted literals.
func (a *API) installScript(w http.ResponseWriter, r *http.Request) {
	platform := r.PathValue("platform")
	if !installscript.Supported(platform) {
		writeError(w, errf(http.StatusNotFound, "unknown_platform", "There is no install script for that platform; use /install/linux, /install/windows or /install/darwin."))
		return
	}
	server, e := a.serverURL(r)
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	keys, err := a.publicKeyList(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := installscript.Params{ServerURL: server, Token: q.Get("token"), Arch: q.Get("arch"), Action: q.Get("action")}
	for _, k := range keys {
		p.Keys = append(p.Keys, installscript.Key{ID: k.KeyID, PublicKey: k.PublicKey})
	}
	script, err := installscript.Render(platform, p)
	var pe *installscript.Error
	if errors.As(err, &pe) {
		writeError(w, errf(http.StatusBadRequest, "invalid_field", "Query parameter %q: %s.", pe.Field, pe.Msg))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", installscript.ContentType(platform))
	h.Set("Content-Disposition", `inline; filename="`+installscript.FileName(platform)+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store") // it may carry a registration token
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(script)
}

// serverURL is the URL install scripts reach the server at:
// REDFLAG_PUBLIC_URL, else the scheme and Host of the request.
func (a *API) serverURL(r *http.Request) (string, *apiError) {
	raw := a.d.PublicURL
	if raw == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		raw = scheme + "://" + r.Host
	}
	u, err := installscript.NormalizeServerURL(raw)
	if err != nil {
		if a.d.PublicURL != "" {
			a.d.Logger.ErrorContext(r.Context(), "REDFLAG_PUBLIC_URL cannot be put into an install script", "error", err)
			return "", errf(http.StatusInternalServerError, "public_url_invalid", "REDFLAG_PUBLIC_URL cannot be used in an install script: %s.", err.Error())
		}
		return "", errf(http.StatusBadRequest, "invalid_host", "The Host of this request cannot be put into an install script (%s); the admin can set REDFLAG_PUBLIC_URL.", err.Error())
	}
	return u, nil
}
