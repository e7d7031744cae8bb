package scanner

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// imageRef is a parsed, normalised container image reference. It is built
// only by parseImageRef, whose strict grammar is what makes it safe to put
// the parts into registry and Engine API URLs.
type imageRef struct {
	// Domain is the registry host[:port], normalised: "docker.io" for
	// Docker Hub (also written index.docker.io, or left out).
	Domain string
	// Path is the repository path, "library/nginx" for an official image.
	Path string
	// Tag is "latest" when the reference names neither tag nor digest.
	Tag string
	// Digest is set when the reference is pinned ("sha256:…").
	Digest string
}

const (
	dockerHubDomain = "docker.io"
	// dockerHubAPIHost is where Docker Hub's registry API answers.
	dockerHubAPIHost = "registry-1.docker.io"
	maxRefLen        = 512
	maxRefNameLen    = 255
)

// The grammar follows the distribution reference grammar, written here
// from its description: lowercase path components joined by separators,
// an optional registry host first, tags of word characters.
var (
	refPathComponentRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	refDomainRe        = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]{1,5})?$`)
	refTagRe           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRe           = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	imageIDHexRe       = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

var errNotImageRef = errors.New("not an image reference")

// parseImageRef parses s strictly; anything outside the grammar is an error.
func parseImageRef(s string) (imageRef, error) {
	if s == "" || len(s) > maxRefLen {
		return imageRef{}, fmt.Errorf("%w: length %d", errNotImageRef, len(s))
	}
	name, digest, pinned := strings.Cut(s, "@")
	if pinned && !digestRe.MatchString(digest) {
		return imageRef{}, fmt.Errorf("%w: bad digest in %q", errNotImageRef, s)
	}
	var tag string
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
		if !refTagRe.MatchString(tag) {
			return imageRef{}, fmt.Errorf("%w: bad tag in %q", errNotImageRef, s)
		}
	}
	if name == "" || len(name) > maxRefNameLen {
		return imageRef{}, fmt.Errorf("%w: bad name length in %q", errNotImageRef, s)
	}
	domain, path := "", name
	if first, rest, ok := strings.Cut(name, "/"); ok && looksLikeDomain(first) {
		domain, path = first, rest
		if !refDomainRe.MatchString(domain) {
			return imageRef{}, fmt.Errorf("%w: bad registry host in %q", errNotImageRef, s)
		}
	}
	for _, c := range strings.Split(path, "/") {
		if !refPathComponentRe.MatchString(c) {
			return imageRef{}, fmt.Errorf("%w: bad repository path in %q", errNotImageRef, s)
		}
	}
	// A bare 64-hex name is an image id, which Docker refuses as a name too.
	if domain == "" && imageIDHexRe.MatchString(path) {
		return imageRef{}, fmt.Errorf("%w: %q is an image id", errNotImageRef, s)
	}
	if domain == "" || domain == "index.docker.io" {
		domain = dockerHubDomain
	}
	if domain == dockerHubDomain && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	if tag == "" && !pinned {
		tag = "latest"
	}
	return imageRef{Domain: domain, Path: path, Tag: tag, Digest: digest}, nil
}

// looksLikeDomain is Docker's rule for telling "host/repo" from "user/repo".
func looksLikeDomain(s string) bool {
	return strings.ContainsAny(s, ".:[") || s == "localhost" || strings.ToLower(s) != s
}

// Name is the full repository name, "docker.io/library/nginx".
func (r imageRef) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised reference.
func (r imageRef) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Familiar is the short form people type: "nginx:1.27", "grafana/grafana:latest",
// "ghcr.io/org/app:v1". It parses back to the same reference.
func (r imageRef) Familiar() string {
	if r.Domain != dockerHubDomain {
		return r.String()
	}
	// Strip only what parseImageRef adds back: "library/a/b" and
	// "docker.io/localhost/x" keep their prefix or they would reparse differently.
	path := r.Path
	if first, _, _ := strings.Cut(path, "/"); looksLikeDomain(first) {
		return r.String()
	}
	if rest, ok := strings.CutPrefix(path, "library/"); ok && !strings.Contains(rest, "/") {
		path = rest
	}
	// What follows the name: ":tag", "@digest" or both.
	return path + strings.TrimPrefix(r.String(), r.Name())
}

// apiHost is the host serving the registry API for this reference.
func (r imageRef) apiHost() string {
	if r.Domain == dockerHubDomain {
		return dockerHubAPIHost
	}
	return r.Domain
}

// sameRepo reports whether a and b name the same repository.
func (r imageRef) sameRepo(o imageRef) bool { return r.Domain == o.Domain && r.Path == o.Path }

// repoDigests returns the digests of RepoDigests entries ("nginx@sha256:…")
// that belong to r's repository; malformed entries are ignored.
func (r imageRef) repoDigests(repoDigests []string) []string {
	var out []string
	for _, rd := range repoDigests {
		o, err := parseImageRef(rd)
		if err != nil || o.Digest == "" || !r.sameRepo(o) {
			continue
		}
		out = append(out, o.Digest)
	}
	return out
}
