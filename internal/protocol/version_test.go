package protocol

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
		ok   bool
	}{
		{"1.0.0", "1.1.0", -1, true},
		{"1.1.0", "1.0.0", 1, true},
		{"1.1.0", "v1.1.0", 0, true},
		{"1.1.0+g1234", "1.1.0", 0, true},
		{"0.9.0", "1.0.0", -1, true},
		{"1.10.0", "1.9.0", 1, true},
		{"1.0.0-rc.1", "1.0.0", -1, true},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1, true},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1, true},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1, true},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1, true},
		{"dev", "1.0.0", 0, false},
		{"1.0", "1.0.0", 0, false},
		{"01.0.0", "1.0.0", 0, false},
		{"1.0.0-", "1.0.0", 0, false},
		{"1.0.0-01", "1.0.0", 0, false},
		{"1.0.0+", "1.0.0", 0, false},
		{"1.0.0:x", "1.0.0", 0, false},
		{"", "1.0.0", 0, false},
	}
	for _, tt := range tests {
		got, ok := CompareVersions(tt.a, tt.b)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d, %v", tt.a, tt.b, got, ok, tt.want, tt.ok)
		}
		if ok {
			if back, _ := CompareVersions(tt.b, tt.a); back != -got {
				t.Errorf("CompareVersions(%q, %q) = %d, not the opposite of %d", tt.b, tt.a, back, got)
			}
		}
	}
}
