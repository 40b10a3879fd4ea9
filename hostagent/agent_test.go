package hostagent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/store"
)

func TestStartReadyStatusAndCleanStop(t *testing.T) {
	m, cfg := testMachine(t)
	vm := newFakeVM()
	r := startAgent(t, m, cfg, vm)

	st, err := r.c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateRunning || !st.Ready || len(st.Phases) != 4 || st.DockerSocket != m.DockerSocket() {
		t.Fatalf("status %+v", st)
	}
	if pid := store.ReadPid(m.PidFile()); pid != os.Getpid() {
		t.Errorf("pid file %d", pid)
	}
	// The Docker socket is private and reaches the guest engine.
	if fi, err := os.Stat(m.DockerSocket()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("docker.sock: %v %v", err, fi)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", m.DockerSocket())
	}}}
	resp, err := hc.Get("http://docker/_ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "OK" {
		t.Errorf("engine answered %q", body)
	}
	// The host pushed its clock.
	deadline := time.Now().Add(5 * time.Second)
	for {
		vm.mu.Lock()
		synced := vm.synced
		vm.mu.Unlock()
		if !synced.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no time sync reached the guest")
		}
		time.Sleep(10 * time.Millisecond)
	}

	stopped := r.stop(t, false)
	if stopped.StopMethod != StopGuest || vm.stoppedBy() != "guest" {
		t.Errorf("stop method %q (vm: %q), want guest", stopped.StopMethod, vm.stoppedBy())
	}
	for _, p := range []string{m.PidFile(), m.ControlSocket(), m.DockerSocket()} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after stop", p)
		}
	}
	if store.Held(m.AgentLock()) {
		t.Error("agent lock still held after Run returned")
	}
	// events.jsonl recorded the whole run.
	b, _ := os.ReadFile(m.EventsPath())
	for _, want := range []string{`"type":"starting"`, `"type":"vm-state","message":"running"`, `"type":"phase"`, `"type":"ready"`, `"stop_method":"guest"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("events.jsonl lacks %s", want)
		}
	}
}

func TestStopFallsBack(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		ignoreGuest, ignoreA bool
		force                bool
		want                 string
	}{
		{"guest ignores shutdown: ACPI", true, false, false, StopACPI},
		{"guest ignores both: kill", true, true, false, StopKill},
		{"force: kill at once", false, false, true, StopKill},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, cfg := testMachine(t)
			vm := newFakeVM()
			vm.ignoreShutdown, vm.ignoreACPI = tt.ignoreGuest, tt.ignoreA
			r := startAgent(t, m, cfg, vm)
			if got := r.stop(t, tt.force).StopMethod; got != tt.want {
				t.Errorf("stop method %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCrashIsReported(t *testing.T) {
	m, cfg := testMachine(t)
	vm := newFakeVM()
	r := startAgent(t, m, cfg, vm)
	os.WriteFile(m.SerialLog(), []byte("...\nKernel panic - not syncing: softlockup: hung tasks\n"), 0o600)
	vm.powerOff("crash")
	select {
	case err := <-r.done:
		if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), "machine start") {
			t.Fatalf("Run after a crash: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the VM crashed")
	}
	if store.Held(m.AgentLock()) {
		t.Error("lock held after crash")
	}
	b, _ := os.ReadFile(m.EventsPath())
	if !bytes.Contains(b, []byte(`"stop_method":"crash"`)) {
		t.Errorf("no crash event in %s", b)
	}
}

func TestSecondAgentRefused(t *testing.T) {
	m, cfg := testMachine(t)
	r := startAgent(t, m, cfg, newFakeVM())
	err := Run(context.Background(), Options{Machine: m, Config: cfg,
		NewDriver: func(driver.Config) (driver.Driver, error) { return newFakeVM(), nil }})
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second agent: %v", err)
	}
	// The refused agent must not have touched the running one's files.
	if _, err := r.c.Status(context.Background()); err != nil {
		t.Fatalf("running agent broken by the refused one: %v", err)
	}
	r.stop(t, false)
}

func TestStaleFilesFromACrashAreReplaced(t *testing.T) {
	m, cfg := testMachine(t)
	os.WriteFile(m.PidFile(), []byte("999999\n"), 0o600)
	for _, p := range []string{m.ControlSocket(), m.DockerSocket()} {
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // leaves the socket file, as a killed agent does
	}
	r := startAgent(t, m, cfg, newFakeVM())
	if pid := store.ReadPid(m.PidFile()); pid != os.Getpid() {
		t.Errorf("stale pid kept: %d", pid)
	}
	r.stop(t, false)
}

func TestDriverStartFailureIsAnEvent(t *testing.T) {
	m, cfg := testMachine(t)
	err := Run(context.Background(), Options{Machine: m, Config: cfg,
		NewDriver: func(driver.Config) (driver.Driver, error) { return nil, errors.New("qemu: not found") }})
	if err == nil || !strings.Contains(err.Error(), "qemu: not found") {
		t.Fatalf("Run: %v", err)
	}
	b, _ := os.ReadFile(m.EventsPath())
	if !bytes.Contains(b, []byte(`"type":"error"`)) || !bytes.Contains(b, []byte("qemu: not found")) {
		t.Errorf("events %s", b)
	}
}

func TestGuestStreamThroughControlSocket(t *testing.T) {
	m, cfg := testMachine(t)
	r := startAgent(t, m, cfg, newFakeVM())
	defer r.stop(t, false)
	c, err := r.c.DialGuest(context.Background(), api.ServiceExec)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello bye" {
		t.Fatalf("half-closed guest stream read %q, %v", got, err)
	}
	if _, err := r.c.DialGuest(context.Background(), 9999); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("unknown service: %v", err)
	}
}

func TestDriverRosetta(t *testing.T) {
	if r := driverRosetta(&store.Config{}); r != nil {
		t.Errorf("no Rosetta asked: %+v", r)
	}
	if r := driverRosetta(&store.Config{Rosetta: true}); r == nil || r.HostPath != "" {
		t.Errorf("--rosetta: %+v, want Apple's (no host folder)", r)
	}
	if r := driverRosetta(&store.Config{RosettaStandIn: "/cache/stand-in"}); r == nil || r.HostPath != "/cache/stand-in" {
		t.Errorf("stand-in: %+v", r)
	}
}
