package ports

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// fakeDocker is a Docker API on a unix socket: an event stream the test drives and a
// container list the test sets.
type fakeDocker struct {
	t      testing.TB
	socket string

	mu         sync.Mutex
	containers string // JSON body of GET /containers/json
	streams    map[chan string]chan struct{}
	log        []string // "events" and "list", in arrival order
	queries    []url.Values
	srv        *http.Server
	lis        net.Listener

	subscribed chan struct{} // one token per registered event stream
	listing    chan struct{} // one token per listing received, before it is answered
	gate       chan struct{} // when set, each listing waits for one token from it
	listed     chan struct{} // one token per answered listing
}

func newFakeDocker(t testing.TB) *fakeDocker {
	// A short path: unix socket paths are limited to ~104 bytes and t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "pt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeDocker{
		t:          t,
		socket:     filepath.Join(dir, "docker.sock"),
		containers: "[]",
		streams:    map[chan string]chan struct{}{},
		subscribed: make(chan struct{}, 100),
		listed:     make(chan struct{}, 1000),
		listing:    make(chan struct{}, 1000),
	}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeDocker) start() {
	lis, err := net.Listen("unix", f.socket)
	if err != nil {
		f.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", f.events)
	mux.HandleFunc("GET /containers/json", f.list)
	f.mu.Lock()
	f.lis = lis
	f.srv = &http.Server{Handler: mux}
	srv := f.srv
	f.mu.Unlock()
	go srv.Serve(lis)
}

// stop is dockerd going away: listener closed, streams cut.
func (f *fakeDocker) stop() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		f.dropStreams()
		srv.Close()
	}
}

func (f *fakeDocker) events(w http.ResponseWriter, r *http.Request) {
	// Register before answering, so that the request log orders the subscription correctly
	// against listings the client sends once it has the headers.
	ch, drop := make(chan string, 100), make(chan struct{})
	f.mu.Lock()
	f.streams[ch] = drop
	f.log = append(f.log, "events")
	f.queries = append(f.queries, r.URL.Query())
	f.mu.Unlock()
	f.subscribed <- struct{}{}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	defer func() {
		f.mu.Lock()
		delete(f.streams, ch)
		f.mu.Unlock()
	}()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-drop:
			return
		case s := <-ch:
			if _, err := w.Write([]byte(s + "\n")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

func (f *fakeDocker) list(w http.ResponseWriter, _ *http.Request) {
	signal(f.listing)
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	body := f.containers
	f.log = append(f.log, "list")
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(body))
	signal(f.listed)
}

// signal drops the token when nobody counts (benchmarks run more listings than fit).
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (f *fakeDocker) setContainers(body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = body
}

// emit sends a container event with action to every open stream.
func (f *fakeDocker) emit(action string) {
	b, _ := json.Marshal(map[string]any{
		"Type": "container", "Action": action, "status": action,
		"id": "c1", "Actor": map[string]any{"ID": "c1"}, "time": time.Now().Unix(),
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.streams) == 0 {
		f.t.Fatalf("emit %s: no event stream open", action)
	}
	for ch := range f.streams {
		ch <- string(b)
	}
}

// dropStreams ends every open event stream, as a dockerd crash does.
func (f *fakeDocker) dropStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch, drop := range f.streams {
		close(drop)
		delete(f.streams, ch)
	}
}

func (f *fakeDocker) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// recorder is a Reporter that hands each reported set to the test.
type recorder struct{ sets chan []api.Port }

func newRecorder() *recorder { return &recorder{sets: make(chan []api.Port, 100)} }

func (r *recorder) Ports(p []api.Port) { r.sets <- p }

func (r *recorder) next(t testing.TB) []api.Port {
	t.Helper()
	select {
	case p := <-r.sets:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no ports reported within 5s")
		return nil
	}
}

func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case p := <-r.sets:
		t.Fatalf("unexpected report %+v", p)
	default:
	}
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// runWatcher starts a watcher on f and stops it (and waits for it) at cleanup.
func runWatcher(t testing.TB, f *fakeDocker, rec *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{Socket: f.socket, Report: rec, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != context.Canceled {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}
