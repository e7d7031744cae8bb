// Package version holds the build identity, set at link time with
// -ldflags "-X github.com/redflaghq/redflag/internal/version.Version=…".
package version

// These are written only by the linker; "dev" marks a plain `go build`.
var (
	Version   = "dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

// String is the one-line form printed by --version on every binary.
func String(binary string) string {
	return binary + " " + Version + " (commit " + Commit + ", built " + BuildDate + ")"
}
