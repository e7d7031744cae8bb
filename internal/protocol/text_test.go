package protocol

import (
	"strings"
	"testing"
)

func TestCheckText(t *testing.T) {
	tests := []struct {
		in        string
		max       int
		multiline bool
		ok        bool
	}{
		{"web-01", 64, false, true},
		{"Robert'); DROP TABLE agents;--", 64, false, true},
		{"日本語ホスト 🚀", 64, false, true},
		{"", 64, false, true},
		{"a\x00b", 64, false, false},
		{"a\nb", 64, false, false},
		{"a\nb", 64, true, true},
		{"\x1b[31mred", 64, true, false},
		{string([]byte{0xff, 0xfe}), 64, false, false},
		{strings.Repeat("a", 65), 64, false, false},
		{"\u0085next-line", 64, true, false},
	}
	for _, tt := range tests {
		err := CheckText(tt.in, tt.max, tt.multiline)
		if (err == nil) != tt.ok {
			t.Errorf("CheckText(%q, %d, %v) = %v, want ok=%v", tt.in, tt.max, tt.multiline, err, tt.ok)
		}
	}
}

func TestValidMachineID(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		in string
		ok bool
	}{{good, true}, {strings.ToUpper(good), false}, {good[:63], false}, {good + "0", false}, {strings.Repeat("g", 64), false}, {"", false}} {
		if ValidMachineID(tt.in) != tt.ok {
			t.Errorf("ValidMachineID(%q) != %v", tt.in, tt.ok)
		}
	}
}
