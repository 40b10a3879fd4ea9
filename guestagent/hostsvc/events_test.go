package hostsvc

import (
	"slices"
	"testing"

	"github.com/machine-run/machine/guestagent/api"
)

func TestBindSources(t *testing.T) {
	cs := []Container{
		{Mounts: []Mount{{Type: "bind", Source: "/home/ann/src"}, {Type: "volume", Source: "/var/lib/docker/volumes/x/_data"}}},
		{Mounts: []Mount{{Type: "bind", Source: "/home/ann/src/"}, {Type: "bind", Source: "/var/run/docker.sock"}}},
		{Mounts: []Mount{{Type: "bind", Source: "/home/annie"}, {Type: "bind", Source: "/Users/bo/p"}, {Type: "bind", Source: "rel"}}},
		{},
	}
	got := BindSources(cs, []string{"/home/ann", "/Users/bo"})
	if want := []string{"/Users/bo/p", "/home/ann/src"}; !slices.Equal(got, want) {
		t.Errorf("BindSources = %q, want %q (binds under shares, once each)", got, want)
	}
	if got := BindSources(cs, nil); len(got) != 0 {
		t.Errorf("no shares: %q", got)
	}
}

func TestReplay(t *testing.T) {
	for _, tc := range []struct {
		ev   api.FileEvent
		want []string
	}{
		{api.FileEvent{Path: "/w/a.txt", Op: api.FileWrite}, []string{"/w/a.txt"}},
		{api.FileEvent{Path: "/w/a.txt", Op: api.FileCreate}, []string{"/w/a.txt", "/w"}},
		{api.FileEvent{Path: "/w/sub/../b", Op: api.FileRemove}, []string{"/w/b", "/w"}},
		{api.FileEvent{Path: "/w/c", Op: api.FileRename}, []string{"/w/c", "/w"}},
		{api.FileEvent{Path: "relative", Op: api.FileWrite}, nil},
	} {
		var touched []string
		Replay(tc.ev, func(p string) error { touched = append(touched, p); return nil })
		if !slices.Equal(touched, tc.want) {
			t.Errorf("Replay(%+v) touched %q, want %q", tc.ev, touched, tc.want)
		}
	}
}
