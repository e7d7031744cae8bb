package protocol

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// ErrBadText is the root of CheckText's errors.
var ErrBadText = errors.New("text is not acceptable")

// CheckText accepts valid UTF-8 of at most max bytes without control
// characters (tabs and newlines only where multiline is set). Every string
// an agent or user sends passes through it before it reaches a database
// (PostgreSQL refuses NUL), a log line or a browser.
func CheckText(s string, max int, multiline bool) error {
	if len(s) > max {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadText, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadText)
	}
	for _, r := range s {
		if r == '\n' || r == '\t' || r == '\r' {
			if multiline {
				continue
			}
			return fmt.Errorf("%w: contains a line break or tab", ErrBadText)
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%w: contains control character %U", ErrBadText, r)
		}
	}
	return nil
}
