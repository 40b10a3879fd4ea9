package hostsvc

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/machine-run/machine/guestagent/api"
)

func TestPathMapping(t *testing.T) {
	shares := []Share{{HostPath: "/home/ann", GuestPath: "/home/ann"}, {HostPath: "/home/ann/src/big", GuestPath: "/big"}, {HostPath: "/srv", GuestPath: "/s"}}
	for _, tc := range []struct {
		guest, host string
		ok          bool
	}{
		{"/home/ann", "/home/ann", true},
		{"/home/ann/src/x", "/home/ann/src/x", true},
		{"/big/y", "/home/ann/src/big/y", true},
		{"/s/../etc/passwd", "", false},
		{"/home/annie", "", false},
		{"relative", "", false},
		{"/etc", "", false},
	} {
		got, ok := ToHost(shares, tc.guest)
		if ok != tc.ok || got != tc.host {
			t.Errorf("ToHost(%q) = %q, %v; want %q, %v", tc.guest, got, ok, tc.host, tc.ok)
		}
	}
	for _, tc := range []struct {
		host, guest string
		ok          bool
	}{
		{"/home/ann/src/x", "/home/ann/src/x", true},
		{"/home/ann/src/big/y", "/big/y", true}, // the longest share wins
		{"/srv", "/s", true},
		{"/srvx/a", "", false},
		{"/etc/passwd", "", false},
	} {
		got, ok := ToGuest(shares, tc.host)
		if ok != tc.ok || got != tc.guest {
			t.Errorf("ToGuest(%q) = %q, %v; want %q, %v", tc.host, got, ok, tc.guest, tc.ok)
		}
	}
}

func TestOpOf(t *testing.T) {
	for op, want := range map[fsnotify.Op]string{
		fsnotify.Create: api.FileCreate, fsnotify.Write: api.FileWrite, fsnotify.Remove: api.FileRemove,
		fsnotify.Rename: api.FileRename, fsnotify.Chmod: "", fsnotify.Create | fsnotify.Write: api.FileCreate,
	} {
		if got := opOf(op); got != want {
			t.Errorf("opOf(%v) = %q, want %q", op, got, want)
		}
	}
	if merge(api.FileCreate, api.FileWrite) != api.FileCreate || merge(api.FileWrite, api.FileRemove) != api.FileRemove || merge("", api.FileWrite) != api.FileWrite {
		t.Error("merge does not keep the structural op")
	}
}

// watchStream starts a watch stream for the guest paths and returns a reader of its batches.
func watchStream(t *testing.T, s *Server, paths ...string) (func(time.Duration) (api.FileEvents, bool), func(paths ...string)) {
	c := serve(t, s, api.ServiceHostWatch)
	send := func(paths ...string) {
		json.NewEncoder(c).Encode(api.WatchRequest{Paths: paths})
	}
	send(paths...)
	batches := make(chan api.FileEvents, 100)
	go func() {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var b api.FileEvents
			json.Unmarshal(sc.Bytes(), &b)
			batches <- b
		}
		close(batches)
	}()
	return func(d time.Duration) (api.FileEvents, bool) {
		select {
		case b, ok := <-batches:
			return b, ok
		case <-time.After(d):
			return api.FileEvents{}, false
		}
	}, send
}

// until pokes (writes a file) until a batch holding want arrives: the watch is set up
// asynchronously after the request.
func until(t *testing.T, next func(time.Duration) (api.FileEvents, bool), poke func(), want string) api.FileEvents {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		poke()
		if b, ok := next(200 * time.Millisecond); ok {
			for _, e := range b.Events {
				if e.Path == want {
					return b
				}
			}
		}
	}
	t.Fatalf("no event for %s", want)
	return api.FileEvents{}
}

func TestWatchEvents(t *testing.T) {
	host := t.TempDir()
	os.MkdirAll(filepath.Join(host, "proj", "deep"), 0o755)
	os.MkdirAll(filepath.Join(host, "other"), 0o755)
	s := &Server{Shares: []Share{{HostPath: host, GuestPath: "/g"}}}
	defer s.Close()
	next, _ := watchStream(t, s, "/g/proj")

	f := filepath.Join(host, "proj", "deep", "f.txt")
	until(t, next, func() { os.WriteFile(f, []byte("x"), 0o644) }, "/g/proj/deep/f.txt")

	// A folder created under a watched one is watched too.
	nd := filepath.Join(host, "proj", "new")
	os.Mkdir(nd, 0o755)
	until(t, next, func() { os.WriteFile(filepath.Join(nd, "g.txt"), []byte("y"), 0o644) }, "/g/proj/new/g.txt")

	// Folders nobody bind-mounted are not watched.
	for i := 0; i < 5; i++ {
		os.WriteFile(filepath.Join(host, "other", "o"+strconv.Itoa(i)), []byte("z"), 0o644)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		b, _ := next(50 * time.Millisecond)
		for _, e := range b.Events {
			if strings.HasPrefix(e.Path, "/g/other") {
				t.Fatalf("an unwatched folder sent %v", e)
			}
		}
	}
}

func TestWatchCoalesces(t *testing.T) {
	host := t.TempDir()
	s := &Server{Shares: []Share{{HostPath: host, GuestPath: "/g"}}, Coalesce: 100 * time.Millisecond}
	defer s.Close()
	next, _ := watchStream(t, s, "/g")
	f := filepath.Join(host, "f")
	until(t, next, func() { os.WriteFile(f, []byte("x"), 0o644) }, "/g/f")
	for b, ok := next(300 * time.Millisecond); ok; b, ok = next(300 * time.Millisecond) {
		_ = b // drain the warm-up
	}
	for i := 0; i < 100; i++ {
		os.WriteFile(f, []byte(strconv.Itoa(i)), 0o644)
	}
	events := 0
	for b, ok := next(time.Second); ok; b, ok = next(time.Second) {
		events += len(b.Events)
	}
	if events == 0 || events >= 100 {
		t.Errorf("100 writes in a burst gave %d events, want at least one and far fewer", events)
	}
}

func TestWatchBound(t *testing.T) {
	host := t.TempDir()
	for _, d := range []string{"a", "b", "c", "d"} {
		os.Mkdir(filepath.Join(host, d), 0o755)
	}
	s := &Server{Shares: []Share{{HostPath: host, GuestPath: "/g"}}, MaxWatchedDirs: 2}
	defer s.Close()
	next, _ := watchStream(t, s, "/g", "/elsewhere")
	b, ok := next(10 * time.Second)
	if !ok || !strings.Contains(b.Error, "only the first 2 are watched") {
		t.Errorf("over the bound: %+v, want an error naming the bound", b)
	}
}
