package scanner

import (
	"slices"
	"strings"
	"testing"
)

const (
	testDigestA = "sha256:e2a23387da9b39494636d7c5818a9add02fa0dcb9d4c75b1f6e519b698a7c6b8"
	testDigestB = "sha256:7a2e3842dc3a441e3f2fe59704bb1e852a31ffcd22cde6416e9b506ce3149207"
)

func TestParseImageRef(t *testing.T) {
	tests := []struct {
		in                         string
		domain, path, tag, digest  string
		familiar, apiHost, errPart string
	}{
		{in: "nginx", domain: "docker.io", path: "library/nginx", tag: "latest", familiar: "nginx:latest", apiHost: "registry-1.docker.io"},
		{in: "nginx:1.27", domain: "docker.io", path: "library/nginx", tag: "1.27", familiar: "nginx:1.27", apiHost: "registry-1.docker.io"},
		{in: "docker.io/library/nginx:1.27", domain: "docker.io", path: "library/nginx", tag: "1.27", familiar: "nginx:1.27", apiHost: "registry-1.docker.io"},
		{in: "index.docker.io/library/nginx", domain: "docker.io", path: "library/nginx", tag: "latest", familiar: "nginx:latest", apiHost: "registry-1.docker.io"},
		{in: "docker.io/nginx", domain: "docker.io", path: "library/nginx", tag: "latest", familiar: "nginx:latest", apiHost: "registry-1.docker.io"},
		{in: "grafana/grafana:11.0.0", domain: "docker.io", path: "grafana/grafana", tag: "11.0.0", familiar: "grafana/grafana:11.0.0", apiHost: "registry-1.docker.io"},
		{in: "library/a/b", domain: "docker.io", path: "library/a/b", tag: "latest", familiar: "library/a/b:latest", apiHost: "registry-1.docker.io"},
		{in: "ghcr.io/acme/app:v1", domain: "ghcr.io", path: "acme/app", tag: "v1", familiar: "ghcr.io/acme/app:v1", apiHost: "ghcr.io"},
		{in: "localhost:5000/team/svc", domain: "localhost:5000", path: "team/svc", tag: "latest", familiar: "localhost:5000/team/svc:latest", apiHost: "localhost:5000"},
		{in: "localhost/svc:dev", domain: "localhost", path: "svc", tag: "dev", familiar: "localhost/svc:dev", apiHost: "localhost"},
		{in: "[::1]:5000/svc:1", domain: "[::1]:5000", path: "svc", tag: "1", familiar: "[::1]:5000/svc:1", apiHost: "[::1]:5000"},
		{in: "registry.example.com:5000/a/b/c:1.0-rc_1", domain: "registry.example.com:5000", path: "a/b/c", tag: "1.0-rc_1", familiar: "registry.example.com:5000/a/b/c:1.0-rc_1", apiHost: "registry.example.com:5000"},
		{in: "nginx@" + testDigestA, domain: "docker.io", path: "library/nginx", digest: testDigestA, familiar: "nginx@" + testDigestA, apiHost: "registry-1.docker.io"},
		{in: "nginx:1.27@" + testDigestA, domain: "docker.io", path: "library/nginx", tag: "1.27", digest: testDigestA, familiar: "nginx:1.27@" + testDigestA, apiHost: "registry-1.docker.io"},
		{in: "my_org/some-app__x:Tag.1", domain: "docker.io", path: "my_org/some-app__x", tag: "Tag.1", familiar: "my_org/some-app__x:Tag.1", apiHost: "registry-1.docker.io"},

		{in: "", errPart: "length"},
		{in: "Nginx", errPart: "repository path"},
		{in: "nginx:", errPart: "tag"},
		{in: "nginx:-bad", errPart: "tag"},
		{in: "nginx:" + strings.Repeat("a", 129), errPart: "tag"},
		{in: "nginx@sha256:abc", errPart: "digest"},
		{in: "nginx@md5:" + strings.Repeat("a", 32), errPart: "digest"},
		{in: "nginx; rm -rf /", errPart: "repository path"},
		{in: "nginx/../../etc", errPart: "repository path"},
		{in: "a//b", errPart: "repository path"},
		{in: "/nginx", errPart: "repository path"},
		{in: "nginx/", errPart: "repository path"},
		{in: "ex ample.com/a", errPart: "registry host"},
		{in: "-bad.com/a", errPart: "registry host"},
		{in: "ghcr.io/a?x=1", errPart: "repository path"},
		{in: "ghcr.io/a%2fb", errPart: "repository path"},
		{in: "nginx\n", errPart: "repository path"},
		{in: strings.Repeat("a", 256), errPart: "name length"},
		{in: strings.Repeat("ab", 300), errPart: "length"},
		{in: "0f3292805c36e8a8a14ac23de01c7e15b94806fd989ba0a34748fcb58ce7104e", errPart: "image id"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := parseImageRef(tt.in)
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("got %+v, %v; want error with %q", r, err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Domain != tt.domain || r.Path != tt.path || r.Tag != tt.tag || r.Digest != tt.digest {
				t.Errorf("got %+v", r)
			}
			if r.Familiar() != tt.familiar || r.apiHost() != tt.apiHost {
				t.Errorf("familiar %q api %q", r.Familiar(), r.apiHost())
			}
			for _, s := range []string{r.String(), r.Familiar()} {
				if back, err := parseImageRef(s); err != nil || back != r {
					t.Errorf("%q reparses to %+v, %v", s, back, err)
				}
			}
		})
	}
}

func TestRepoDigests(t *testing.T) {
	r, _ := parseImageRef("nginx:1.27")
	got := r.repoDigests([]string{
		"nginx@" + testDigestA,
		"docker.io/library/nginx@" + testDigestB, // containerd image store writes the full name
		"ghcr.io/library/nginx@" + testDigestA,   // another registry
		"nginx-other@" + testDigestA,
		"nginx:1.27", // a tag, not a digest
		"garbage@@",
	})
	if !slices.Equal(got, []string{testDigestA, testDigestB}) {
		t.Errorf("got %v", got)
	}
}

func TestStartedByID(t *testing.T) {
	id := "sha256:0f3292805c36e8a8a14ac23de01c7e15b94806fd989ba0a34748fcb58ce7104e"
	for in, want := range map[string]bool{
		id: true, id[7:]: true, "0f3292805c36": true, "sha256:0f3292805c36": true,
		"0f32": false, "nginx:1.27": false, "": false,
	} {
		if got := startedByID(in, id); got != want {
			t.Errorf("startedByID(%q) = %v", in, got)
		}
	}
}

func FuzzParseImageRef(f *testing.F) {
	for _, s := range []string{"nginx", "nginx:1.27", "ghcr.io/acme/app:v1", "localhost:5000/a/b", "[::1]:5000/svc:1",
		"nginx@" + testDigestA, "docker.io/library/a/b:c@" + testDigestB, "a__b--c.d/e", "Docker.IO/x", "docker.io/localhost/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseImageRef(s)
		if err != nil {
			return
		}
		for _, form := range []string{r.String(), r.Familiar()} {
			back, err := parseImageRef(form)
			if err != nil || back != r {
				t.Fatalf("%q → %+v → %q → %+v, %v", s, r, form, back, err)
			}
		}
		if strings.ContainsAny(r.String(), " ?#%\\\n\r\t\"'") {
			t.Fatalf("unsafe characters in %q", r.String())
		}
	})
}
