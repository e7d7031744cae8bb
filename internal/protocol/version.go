package protocol

import (
	"strconv"
	"strings"
)

// Agent and server versions are semantic versions (semver.org 2.0):
// MAJOR.MINOR.PATCH, an optional -prerelease and an optional +build (which
// does not take part in ordering), with an optional leading "v". A release
// build carries one ("1.4.2", "0.1.0+g1a2b3c4d5e6f"); a plain `go build`
// carries "dev", which is not a version.

// MaxVersionLen bounds a version string.
const MaxVersionLen = 64

type semver struct {
	core [3]uint64
	pre  []string
}

func parseSemver(s string) (semver, bool) {
	var v semver
	if len(s) == 0 || len(s) > MaxVersionLen {
		return v, false
	}
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		if !validIdents(s[i+1:], false) {
			return v, false
		}
		s = s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		if !validIdents(s[i+1:], true) {
			return v, false
		}
		v.pre = strings.Split(s[i+1:], ".")
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		if !numericIdent(p) {
			return v, false
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return v, false
		}
		v.core[i] = n
	}
	return v, true
}

// numericIdent: digits without a leading zero (except "0" itself).
func numericIdent(p string) bool {
	if p == "" || (len(p) > 1 && p[0] == '0') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// validIdents checks dot-separated identifiers of [0-9A-Za-z-]; a numeric
// prerelease identifier must not have a leading zero.
func validIdents(s string, pre bool) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		digits := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				digits = false
			default:
				return false
			}
		}
		if pre && digits && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// ValidVersion reports whether s is a semantic version.
func ValidVersion(s string) bool {
	_, ok := parseSemver(s)
	return ok
}

// CompareVersions orders two semantic versions: -1 when a < b, 0 when they
// are equal (build metadata ignored), +1 when a > b. ok is false when
// either is not a version; the result is then 0.
func CompareVersions(a, b string) (cmp int, ok bool) {
	va, oka := parseSemver(a)
	vb, okb := parseSemver(b)
	if !oka || !okb {
		return 0, false
	}
	for i := range va.core {
		if va.core[i] != vb.core[i] {
			if va.core[i] < vb.core[i] {
				return -1, true
			}
			return 1, true
		}
	}
	// A version with a prerelease is lower than the same without one.
	switch {
	case len(va.pre) == 0 && len(vb.pre) == 0:
		return 0, true
	case len(va.pre) == 0:
		return 1, true
	case len(vb.pre) == 0:
		return -1, true
	}
	for i := 0; i < len(va.pre) && i < len(vb.pre); i++ {
		if c := comparePre(va.pre[i], vb.pre[i]); c != 0 {
			return c, true
		}
	}
	switch {
	case len(va.pre) < len(vb.pre):
		return -1, true
	case len(va.pre) > len(vb.pre):
		return 1, true
	}
	return 0, true
}

func comparePre(a, b string) int {
	na, ea := strconv.ParseUint(a, 10, 64)
	nb, eb := strconv.ParseUint(b, 10, 64)
	switch {
	case ea == nil && eb == nil:
		if na < nb {
			return -1
		} else if na > nb {
			return 1
		}
		return 0
	case ea == nil: // numeric identifiers sort before alphanumeric ones
		return -1
	case eb == nil:
		return 1
	}
	return strings.Compare(a, b)
}
