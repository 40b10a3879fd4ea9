package hostagent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/hostagent/driver"
)

type fakePauser struct {
	pauses, resumes int
	resumeErr       error
}

func (p *fakePauser) Pause(context.Context) error { p.pauses++; return nil }
func (p *fakePauser) Resume(context.Context) error {
	if p.resumeErr != nil {
		return p.resumeErr
	}
	p.resumes++
	return nil
}

// testIdler is an idler on a clock the test moves, with n running containers.
func testIdler(running *int, runErr *error) (*idler, *fakePauser, *time.Time) {
	p := &fakePauser{}
	now := time.Unix(1000, 0)
	i := &idler{
		p: p, after: time.Minute, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:     func() time.Time { return now },
		running: func(context.Context) (int, error) { return *running, *runErr },
	}
	i.last = now
	return i, p, &now
}

func TestIdlerPausesOnlyWhenNothingUsesTheMachine(t *testing.T) {
	ctx := context.Background()
	running := 0
	var runErr error
	i, p, now := testIdler(&running, &runErr)

	*now = now.Add(59 * time.Second)
	i.check(ctx)
	if p.pauses != 0 {
		t.Fatal("paused before the idle time")
	}
	*now = now.Add(2 * time.Second)
	running = 1
	i.check(ctx)
	if p.pauses != 0 {
		t.Fatal("paused with a container running")
	}
	running, runErr = 0, errors.New("engine does not answer")
	*now = now.Add(2 * time.Minute)
	i.check(ctx)
	if p.pauses != 0 {
		t.Fatal("paused although the engine could not say what runs")
	}
	runErr = nil
	*now = now.Add(2 * time.Minute)
	// An open connection (docker events, a shell) keeps it awake however long it lasts.
	if err := i.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Hour)
	i.check(ctx)
	if p.pauses != 0 {
		t.Fatal("paused with a connection open")
	}
	i.release()
	*now = now.Add(30 * time.Second)
	i.check(ctx)
	if p.pauses != 0 {
		t.Fatal("paused 30 s after the last connection closed (idle time is a minute)")
	}
	*now = now.Add(31 * time.Second)
	i.check(ctx)
	if p.pauses != 1 || !i.isPaused() {
		t.Fatalf("pauses %d, paused %v: want paused once after a minute idle", p.pauses, i.isPaused())
	}
	i.check(ctx)
	if p.pauses != 1 {
		t.Fatal("paused a paused machine")
	}

	// The next connection resumes before it is dialled; the machine pauses again later.
	if err := i.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if p.resumes != 1 || i.isPaused() {
		t.Fatalf("resumes %d, paused %v after a connection", p.resumes, i.isPaused())
	}
	i.release()
	*now = now.Add(2 * time.Minute)
	i.check(ctx)
	if p.pauses != 2 {
		t.Fatalf("pauses %d: want a second pause after the connection closed and a minute passed", p.pauses)
	}

	// A stop resumes for good.
	if err := i.stop(ctx); err != nil || i.isPaused() {
		t.Fatalf("stop: %v, paused %v", err, i.isPaused())
	}
	*now = now.Add(time.Hour)
	i.check(ctx)
	if p.pauses != 2 {
		t.Fatal("paused after a stop began")
	}
}

func TestIdlerResumeFailureFailsTheDial(t *testing.T) {
	ctx := context.Background()
	running := 0
	var runErr error
	i, p, now := testIdler(&running, &runErr)
	*now = now.Add(2 * time.Minute)
	i.check(ctx)
	p.resumeErr = errors.New("qmp: connection refused")
	if err := i.acquire(ctx); err == nil || !i.isPaused() {
		t.Fatalf("acquire with a failing resume: %v, paused %v", err, i.isPaused())
	}
	p.resumeErr = nil
	if err := i.acquire(ctx); err != nil || i.isPaused() {
		t.Fatalf("acquire after the resume works again: %v", err)
	}
}

// `machine set --auto-pause` while the machine runs: off resumes a paused VM and keeps it
// awake; on again counts the idle time from the change, not from the last use.
func TestIdlerSetAfter(t *testing.T) {
	ctx := context.Background()
	running := 0
	var runErr error
	i, p, now := testIdler(&running, &runErr)
	*now = now.Add(2 * time.Minute)
	i.check(ctx)
	if !i.isPaused() {
		t.Fatal("not paused after two idle minutes")
	}
	if err := i.setAfter(ctx, 0); err != nil || i.isPaused() || p.resumes != 1 {
		t.Fatalf("auto-pause off: %v, paused %v, %d resumes; want resumed once", err, i.isPaused(), p.resumes)
	}
	if i.idleTime() != 0 || i.period() != 15*time.Second {
		t.Fatalf("off: idle time %v, checks every %v", i.idleTime(), i.period())
	}
	*now = now.Add(time.Hour)
	i.check(ctx)
	if p.pauses != 1 {
		t.Fatal("paused with auto-pause off")
	}
	if err := i.setAfter(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if i.period() != 2500*time.Millisecond {
		t.Errorf("10 s idle time: checks every %v, want 2.5s", i.period())
	}
	i.check(ctx)
	if p.pauses != 1 {
		t.Fatal("turning auto-pause on paused at once (the hour idle before it counted)")
	}
	*now = now.Add(11 * time.Second)
	i.check(ctx)
	if p.pauses != 2 {
		t.Fatalf("pauses %d: want a pause 10 s after auto-pause came on", p.pauses)
	}
	// Off while resuming fails: the error is returned and the machine stays paused.
	p.resumeErr = errors.New("qmp: connection refused")
	if err := i.setAfter(ctx, 0); err == nil || !i.isPaused() {
		t.Fatalf("off with a failing resume: %v, paused %v", err, i.isPaused())
	}
}

// A nil idler (the driver cannot pause) is inert, and says so when asked to change.
func TestNilIdler(t *testing.T) {
	var i *idler
	if err := i.acquire(context.Background()); err != nil || i.isPaused() || i.stop(context.Background()) != nil {
		t.Fatal("nil idler did something")
	}
	i.release()
	if err := i.setAfter(context.Background(), time.Minute); !errors.Is(err, driver.ErrUnsupported) || i.idleTime() >= 0 {
		t.Fatalf("setAfter on a driver that cannot pause: %v (idle time %v)", err, i.idleTime())
	}
}

type pipeDriver struct {
	driver.Driver
	conns chan net.Conn
}

func (d pipeDriver) DialGuest(context.Context, uint32) (net.Conn, error) {
	a, b := net.Pipe()
	d.conns <- b
	return halfCloser{a}, nil
}

type halfCloser struct{ net.Conn }

func (halfCloser) CloseWrite() error { return nil }

func TestAwakeDriverHoldsTheMachineWhileAConnectionIsOpen(t *testing.T) {
	ctx := context.Background()
	running := 0
	var runErr error
	i, p, now := testIdler(&running, &runErr)
	*now = now.Add(2 * time.Minute)
	i.check(ctx)
	d := awakeDriver{Driver: pipeDriver{conns: make(chan net.Conn, 1)}, idle: i}
	c, err := d.DialGuest(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.resumes != 1 {
		t.Fatal("dial did not resume the paused machine")
	}
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Fatal("the wrapped connection lost half-close")
	}
	*now = now.Add(time.Hour)
	i.check(ctx)
	if p.pauses != 1 {
		t.Fatal("paused under an open connection")
	}
	c.Close()
	c.Close() // a second close must not release twice
	if i.active != 0 {
		t.Fatalf("active = %d after close", i.active)
	}
	*now = now.Add(2 * time.Minute)
	i.check(ctx)
	if p.pauses != 2 {
		t.Fatal("did not pause after the connection closed")
	}
}

// pausingVM is the fake VM with vCPUs that pause.
type pausingVM struct {
	*fakeVM
	fakePauser
}

// The control API changes a running machine's auto-pause, and status shows it.
func TestAgentChangesAutoPause(t *testing.T) {
	ctx := context.Background()
	m, cfg := testMachine(t)
	if err := cfg.SetAutoPause(true, time.Hour); err != nil {
		t.Fatal(err)
	}
	vm := &pausingVM{fakeVM: newFakeVM()}
	r := startAgentWith(t, m, cfg, vm.fakeVM, Options{NewDriver: func(driver.Config) (driver.Driver, error) { return vm, nil }})
	defer r.stop(t, true)
	autoPause := func() string {
		st, err := r.c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.AutoPause
	}
	if got := autoPause(); got != "after 1h0m0s" {
		t.Errorf("status auto-pause %q, want after 1h0m0s", got)
	}
	if err := r.c.SetAutoPause(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := autoPause(); got != "off" {
		t.Errorf("status auto-pause %q after turning it off", got)
	}
	if err := r.c.SetAutoPause(ctx, 90*time.Second); err != nil || autoPause() != "after 1m30s" {
		t.Errorf("auto-pause 90s: %v, status %q", err, autoPause())
	}
	if err := r.c.SetAutoPause(ctx, -time.Second); err == nil || !strings.Contains(err.Error(), "0s for off") {
		t.Errorf("a negative idle time: %v, want it refused with what to give", err)
	}
}

func TestAgentSaysWhenItsDriverCannotPause(t *testing.T) {
	m, cfg := testMachine(t)
	r := startAgent(t, m, cfg, newFakeVM())
	defer r.stop(t, true)
	err := r.c.SetAutoPause(context.Background(), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "cannot pause") {
		t.Errorf("auto-pause on a driver without pause: %v", err)
	}
	if st, _ := r.c.Status(context.Background()); st.AutoPause != "unsupported" {
		t.Errorf("status auto-pause %q, want unsupported", st.AutoPause)
	}
}
