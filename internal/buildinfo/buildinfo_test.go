package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		main     string
		settings map[string]string
		want     string
	}{
		{"v1.2.0", nil, "v1.2.0"},
		{"(devel)", map[string]string{"vcs.revision": "0123456789abcdef0123", "vcs.modified": "false"}, "dev-0123456789ab"},
		{"(devel)", map[string]string{"vcs.revision": "0123456789abcdef0123", "vcs.modified": "true"}, "dev-0123456789ab-dirty"},
		{"v0.0.0-20261201000000-0123456789ab", map[string]string{"vcs.revision": "fedcba9876543210"}, "dev-fedcba987654"},
		{"(devel)", nil, "dev"},
	}
	for _, tt := range tests {
		bi := &debug.BuildInfo{Main: debug.Module{Version: tt.main}}
		for k, v := range tt.settings {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
		}
		if got := fromBuildInfo(bi); got != tt.want {
			t.Errorf("fromBuildInfo(%q, %v) = %q, want %q", tt.main, tt.settings, got, tt.want)
		}
	}
}
