package store

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAutoPauseIdle(t *testing.T) {
	off := false
	tests := []struct {
		name string
		json string
		want time.Duration
	}{
		{"a config from before auto-pause", `{"name":"old"}`, DefaultAutoPauseAfter},
		{"off", `{"auto_pause":false,"auto_pause_after_seconds":30}`, 0},
		{"on with a time", `{"auto_pause":true,"auto_pause_after_seconds":30}`, 30 * time.Second},
	}
	for _, tt := range tests {
		var c Config
		if err := json.Unmarshal([]byte(tt.json), &c); err != nil {
			t.Fatal(err)
		}
		if got := c.AutoPauseIdle(); got != tt.want {
			t.Errorf("%s: AutoPauseIdle = %v, want %v", tt.name, got, tt.want)
		}
	}
	var c Config
	if err := c.SetAutoPause(true, 90*time.Second); err != nil || c.AutoPauseIdle() != 90*time.Second {
		t.Errorf("SetAutoPause(true, 90s): %v, idle %v", err, c.AutoPauseIdle())
	}
	if err := c.SetAutoPause(true, time.Second); err == nil {
		t.Error("SetAutoPause(true, 1s) accepted a time that would pause between two commands")
	}
	if err := c.SetAutoPause(false, 0); err != nil || c.AutoPauseIdle() != 0 || c.AutoPause == nil || *c.AutoPause != off {
		t.Errorf("SetAutoPause(false): %v, idle %v", err, c.AutoPauseIdle())
	}
}
