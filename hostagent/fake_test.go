package hostagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/mux"
	"github.com/machine-run/machine/guestagent/control"
	"github.com/machine-run/machine/guestagent/state"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/vmimage"
)

// fakeVM is a driver.Driver whose "guest" is the real guest control service and a fake
// Docker engine, reached over the real serial-channel multiplexer on a socket pair.
type fakeVM struct {
	ignoreShutdown bool          // the guest agent accepts the request but never powers off
	ignoreACPI     bool          // the guest ignores the power button
	killErr        error         // Kill returns this and leaves the VM running
	killBlock      chan struct{} // Kill blocks until this is closed, and leaves the VM running
	bootErr        error         // the guest fails its data-disk phase with this, then idles

	link      *mux.Link
	st        *state.State
	svc       *control.Service
	onState   func(string)
	onChannel func(driver.ChannelState)
	cancel    context.CancelFunc

	mu        sync.Mutex
	off       chan struct{}
	how       string // "guest", "acpi", "kill", "crash"
	synced    time.Time
	syncs     int
	holdDials chan struct{}
}

func newFakeVM() *fakeVM { return &fakeVM{off: make(chan struct{})} }

// ReportStates makes the fake a driver.StateReporter, like the vz driver.
func (f *fakeVM) ReportStates(fn func(string)) { f.onState = fn }

func (f *fakeVM) Start(ctx context.Context) error {
	if f.onState != nil {
		f.onState("running")
	}
	gctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.st = state.New(func() float64 { return 1.5 })
	f.st.MeminfoPath = ""
	f.svc = &control.Service{
		State: f.st,
		Shutdown: control.ShutdownFunc(func(context.Context) {
			if !f.ignoreShutdown {
				f.powerOff("guest")
			}
		}),
		SetTime: func(t time.Time) error {
			f.mu.Lock()
			f.synced = t
			f.syncs++
			f.mu.Unlock()
			return nil
		},
	}
	// The host end is the real Link over a fresh pipe per carrier, as the QEMU driver's.
	f.link = &mux.Link{
		Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			f.mu.Lock()
			held := f.holdDials
			f.mu.Unlock()
			if held != nil {
				select {
				case <-held:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			hc, gc := net.Pipe()
			go f.serveSession(gctx, gc)
			return hc, nil
		},
		KeepAliveInterval: 50 * time.Millisecond,
		KeepAliveTimeout:  5 * time.Second,
		OnChange: func(s mux.LinkState) {
			if f.onChannel != nil {
				f.onChannel(driver.ChannelState{Up: s.Up, Err: s.Err})
			}
		},
	}
	go f.link.Run(gctx)
	go func() {
		for _, p := range []string{api.PhaseInit, api.PhaseAgent, api.PhaseDataDisk, api.PhaseDocker} {
			if p == api.PhaseDataDisk && f.bootErr != nil {
				f.st.Fail(f.bootErr) // and idle, as the real guest does
				return
			}
			f.st.Phase(p, "")
		}
		f.st.Ready()
	}()
	return nil
}

// serveSession is the guest end of one carrier: the guest agent serves every session on the
// same state, as it does when it reopens its serial port.
func (f *fakeVM) serveSession(ctx context.Context, gc net.Conn) {
	defer gc.Close()
	srv, err := mux.NewServer(gc)
	if err != nil {
		return
	}
	ctl, _ := srv.Listen(api.ServiceControl)
	dock, _ := srv.Listen(api.ServiceDocker)
	echo, _ := srv.Listen(api.ServiceExec)
	go f.svc.Serve(ctx, ctl)
	go http.Serve(dock, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("OK")) }))
	go serveEcho(echo)
	srv.Serve(ctx)
}

// WatchChannel and CutChannel make the fake a driver.ChannelWatcher, like the QEMU driver.
func (f *fakeVM) WatchChannel(fn func(driver.ChannelState)) { f.onChannel = fn }
func (f *fakeVM) CutChannel() error                         { return f.link.Cut() }

// holdRedials makes carrier dials wait until the returned func is called.
func (f *fakeVM) holdRedials() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.holdDials = ch
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.holdDials = nil
		f.mu.Unlock()
		close(ch)
	}
}

// serveEcho echoes each stream until EOF, then writes "bye" and closes: a half-close probe.
func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 1024)
			var got []byte
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			c.Write(append(got, []byte(" bye")...))
		}()
	}
}

func (f *fakeVM) DialGuest(ctx context.Context, service uint32) (net.Conn, error) {
	return f.link.DialGuest(ctx, service)
}

func (f *fakeVM) RequestStop(context.Context) error {
	if !f.ignoreACPI {
		f.powerOff("acpi")
	}
	return nil
}

func (f *fakeVM) Kill() error {
	if f.killBlock != nil {
		<-f.killBlock
		return errors.New("kill: no answer")
	}
	if f.killErr != nil {
		return f.killErr
	}
	f.powerOff("kill")
	return nil
}

func (f *fakeVM) Wait() error {
	<-f.off
	if f.stoppedBy() == "crash" {
		return errors.New("exit status 1")
	}
	return nil
}

func (f *fakeVM) powerOff(how string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.off:
		return
	default:
	}
	f.how = how
	if f.cancel != nil {
		f.cancel()
	}
	close(f.off)
}

func (f *fakeVM) stoppedBy() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.how
}

// testMachine makes a machine folder with a fake image that vmimage.Load accepts.
func testMachine(t *testing.T) (*store.Machine, *store.Config) {
	t.Helper()
	// Unix socket paths are short: keep the folder short too.
	home, err := os.MkdirTemp("", "ha")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	s := &store.Store{Home: home}
	img := t.TempDir()
	man := vmimage.Manifest{SchemaVersion: vmimage.SchemaVersion, Arch: "amd64", Cmdline: "panic=-1"}
	for _, r := range []string{vmimage.RoleKernel, vmimage.RoleInitramfs, vmimage.RoleRoot} {
		os.WriteFile(filepath.Join(img, r), []byte(r), 0o644)
		man.Files = append(man.Files, vmimage.File{Role: r, Name: r, Size: int64(len(r))})
	}
	b, _ := json.Marshal(man)
	os.WriteFile(filepath.Join(img, vmimage.ManifestName), b, 0o644)
	cfg := &store.Config{Name: "t", Arch: "amd64", CPUs: 1, MemoryMiB: 1024, DiskGiB: 4, Driver: "fake"}
	m, err := s.Create(cfg, img)
	if err != nil {
		t.Fatal(err)
	}
	return m, cfg
}

type running struct {
	m    *store.Machine
	vm   *fakeVM
	c    *Client
	done chan error
}

// startAgent runs the host agent with vm until it reports ready.
func startAgent(t *testing.T, m *store.Machine, cfg *store.Config, vm *fakeVM) *running {
	t.Helper()
	return startAgentWith(t, m, cfg, vm, Options{})
}

// startAgentWith is startAgent with options; zero timeouts get short test values.
func startAgentWith(t *testing.T, m *store.Machine, cfg *store.Config, vm *fakeVM, o Options) *running {
	t.Helper()
	o.Machine, o.Config = m, cfg
	if o.NewDriver == nil {
		o.NewDriver = func(driver.Config) (driver.Driver, error) { return vm, nil }
	}
	for _, d := range []*time.Duration{&o.GuestStopTimeout, &o.ACPITimeout, &o.KillTimeout} {
		if *d == 0 {
			*d = 200 * time.Millisecond
		}
	}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), o) }()
	r := &running{m: m, vm: vm, c: NewClient(m.ControlSocket()), done: done}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := r.c.Status(ctx); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("agent exited: %v", err)
		case <-ctx.Done():
			t.Fatal("control socket never answered")
		case <-time.After(10 * time.Millisecond):
		}
	}
	ready := false
	r.c.Events(ctx, func(e Event) bool {
		if e.Type == EventReady {
			ready = true
			return false
		}
		return true
	})
	if !ready {
		t.Fatal("no ready event")
	}
	return r
}

func (r *running) stop(t *testing.T, force bool) Event {
	t.Helper()
	if err := r.c.Stop(context.Background(), force); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run after stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after stop")
	}
	// The events file, not the control socket: a fast (forced) stop can close the socket
	// before a follower connects, which made this helper see no stopped event at all.
	var stopped Event
	b, _ := os.ReadFile(r.m.EventsPath())
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e Event
		if json.Unmarshal(line, &e) == nil && e.Type == EventStopped {
			stopped = e
		}
	}
	return stopped
}
