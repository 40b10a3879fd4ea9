package main

import "testing"

// Hints name the machine only when it is not the default, and never leave a dangling space.
func TestHintsNameTheMachine(t *testing.T) {
	for name, want := range map[string]string{
		"default": "machine \"default\" is not running: start it with `machine start`",
		"dev":     "machine \"dev\" is not running: start it with `machine start dev`",
	} {
		if got := errNotRunning(name).Error(); got != want {
			t.Errorf("errNotRunning(%q) = %q, want %q", name, got, want)
		}
	}
}
