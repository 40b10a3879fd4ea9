package main

import (
	"testing"

	"github.com/machine-run/machine/hostagent/store"
)

func TestDockerHostFor(t *testing.T) {
	tests := []struct {
		goos string
		m    store.Machine
		want string
	}{
		{"windows", store.Machine{Name: "default", Dir: `C:\Users\ann\AppData\Local\machine\default`}, "npipe:////./pipe/machine-default"},
		{"windows", store.Machine{Name: "dev-2", Dir: `C:\x\dev-2`}, "npipe:////./pipe/machine-dev-2"},
		{"linux", store.Machine{Name: "dev", Dir: "/home/ann/.machine/dev"}, "unix:///home/ann/.machine/dev/docker.sock"},
		{"darwin", store.Machine{Name: "default", Dir: "/Users/ann/.machine/default"}, "unix:///Users/ann/.machine/default/docker.sock"},
	}
	for _, tt := range tests {
		if got := dockerHostFor(tt.goos, &tt.m); got != tt.want {
			t.Errorf("dockerHostFor(%s, %s) = %q, want %q", tt.goos, tt.m.Name, got, tt.want)
		}
	}
}
