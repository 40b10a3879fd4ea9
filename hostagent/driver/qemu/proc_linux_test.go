package qemu

import "testing"

func TestParseStat(t *testing.T) {
	tail := " 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 123 456\n"
	for _, tc := range []struct {
		line, state, start string
		ok                 bool
	}{
		{"4242 (qemu-system-aar) S" + tail, "S", "987654", true},
		{"4242 (a (b) c) Z" + tail, "Z", "987654", true},
		{"4242 (x) R 1 2", "", "", false},
		{"garbage", "", "", false},
	} {
		state, start, err := parseStat(tc.line)
		if (err == nil) != tc.ok || state != tc.state || start != tc.start {
			t.Errorf("parseStat(%q) = %q, %q, %v; want %q, %q, ok %v", tc.line, state, start, err, tc.state, tc.start, tc.ok)
		}
	}
}
