package engine

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/reaper"
)

var testReaper = reaper.New()

func TestMain(m *testing.M) {
	go testReaper.Watch(context.Background())
	os.Exit(m.Run())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRestartsCrashingDaemon(t *testing.T) {
	marks := filepath.Join(t.TempDir(), "starts")
	s := &Supervised{
		Name:       "crasher",
		Command:    func() *exec.Cmd { return exec.Command("sh", "-c", "echo x >> "+marks+"; exit 3") },
		Reaper:     testReaper,
		MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	runs := func() int { b, _ := os.ReadFile(marks); return strings.Count(string(b), "x") }
	waitFor(t, "three runs", func() bool { return runs() >= 3 })
	s.Stop(time.Second)
	<-done
	// The last start may be stopped before its shell wrote its mark.
	if n := runs(); n < s.Starts()-1 || n > s.Starts() {
		t.Fatalf("process ran %d times, supervisor counted %d", n, s.Starts())
	}
}

func TestStopTerminatesWithoutRestart(t *testing.T) {
	var ready atomic.Int32
	s := &Supervised{
		Name:    "daemon",
		Command: func() *exec.Cmd { return exec.Command("sleep", "60") },
		Ready:   func(ctx context.Context) error { return nil },
		OnReady: func() { ready.Add(1) },
		Reaper:  testReaper,
	}
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	waitFor(t, "ready", func() bool { return ready.Load() == 1 })
	start := time.Now()
	s.Stop(5 * time.Second)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("SIGTERM stop took %v", d)
	}
	<-done
	if s.Starts() != 1 {
		t.Fatalf("restarted after Stop: %d starts", s.Starts())
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	started := filepath.Join(t.TempDir(), "started")
	s := &Supervised{
		Name: "stubborn",
		Command: func() *exec.Cmd {
			return exec.Command("sh", "-c", `trap "" TERM; touch `+started+`; while :; do sleep 0.05; done`)
		},
		Reaper: testReaper,
	}
	go s.Run(context.Background())
	waitFor(t, "start", func() bool { _, err := os.Stat(started); return err == nil })
	start := time.Now()
	s.Stop(200 * time.Millisecond)
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("stop of a TERM-ignoring daemon took %v", d)
	}
}

func TestReadyAbandonedWhenDaemonDies(t *testing.T) {
	probeEnded := make(chan error, 1)
	s := &Supervised{
		Name:    "dies",
		Command: func() *exec.Cmd { return exec.Command("sh", "-c", "exit 1") },
		Ready: func(ctx context.Context) error {
			<-ctx.Done()
			probeEnded <- ctx.Err()
			return ctx.Err()
		},
		Reaper:     testReaper,
		MinBackoff: time.Hour,
	}
	go s.Run(context.Background())
	defer s.Stop(time.Second)
	select {
	case err := <-probeEnded:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("probe ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readiness probe still running after the daemon died")
	}
}

// fakeDocker serves /_ping (503 for the first calls, then 200) and /version on a unix socket.
func fakeDocker(t *testing.T, failFirst int32) string {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("OK"))
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"Version":"26.1.5","Components":[{"Name":"Engine","Version":"26.1.5"},{"Name":"containerd","Version":"1.7.24"},{"Name":"runc","Version":"1.1.15"}]}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestWaitDockerPingAndVersions(t *testing.T) {
	sock := fakeDocker(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitDockerPing(ctx, sock); err != nil {
		t.Fatal(err)
	}
	v, err := DockerVersions(ctx, sock)
	if err != nil || v.Docker != "26.1.5" || v.Containerd != "1.7.24" || v.Runc != "1.1.15" {
		t.Fatalf("versions %+v, %v", v, err)
	}
}

func TestWaitUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	go func() {
		time.Sleep(100 * time.Millisecond)
		l, err := net.Listen("unix", sock)
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitUnixSocket(ctx, sock); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := WaitUnixSocket(ctx2, filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("absent socket: %v", err)
	}
}
