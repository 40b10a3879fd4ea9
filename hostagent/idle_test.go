package hostagent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
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

// A nil idler (auto-pause off) is inert.
func TestNilIdler(t *testing.T) {
	var i *idler
	if err := i.acquire(context.Background()); err != nil || i.isPaused() || i.stop(context.Background()) != nil {
		t.Fatal("nil idler did something")
	}
	i.release()
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
