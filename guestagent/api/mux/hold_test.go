package mux

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// frozenConn is the guest end of a carrier whose VM can be paused: while frozen, its reads
// block (the guest runs nothing) and resume with whatever arrived meanwhile.
type frozenConn struct {
	net.Conn
	mu     sync.Mutex
	thawed chan struct{} // nil while running; closed when a freeze ends
}

func (f *frozenConn) freeze() {
	f.mu.Lock()
	f.thawed = make(chan struct{})
	f.mu.Unlock()
}

func (f *frozenConn) thaw() {
	f.mu.Lock()
	if f.thawed != nil {
		close(f.thawed)
		f.thawed = nil
	}
	f.mu.Unlock()
}

func (f *frozenConn) Read(p []byte) (int, error) {
	f.mu.Lock()
	w := f.thawed
	f.mu.Unlock()
	if w != nil {
		<-w
	}
	return f.Conn.Read(p)
}

func TestLinkHoldKeepsAPausedGuestsSession(t *testing.T) {
	g := newGuestSide(t)
	var mu sync.Mutex
	var guestEnd *frozenConn
	dials := 0
	states := make(chan LinkState, 16)
	l := &Link{
		Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			hc, gc := socketPair(t)
			f := &frozenConn{Conn: gc}
			mu.Lock()
			guestEnd, dials = f, dials+1
			mu.Unlock()
			g.carriers <- f
			return hc, nil
		},
		KeepAliveInterval: 20 * time.Millisecond, KeepAliveTimeout: 200 * time.Millisecond,
		OnChange: func(s LinkState) { states <- s },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wantState(t, states, true)
	echo(t, l, "before")

	// Pause for five keepalive timeouts: the hold must keep the link up and the session.
	l.Hold()
	mu.Lock()
	guestEnd.freeze()
	mu.Unlock()
	time.Sleep(time.Second)
	select {
	case s := <-states:
		t.Fatalf("link changed while held: %+v", s)
	default:
	}
	// A stream opened during the pause is answered once the guest runs again.
	answered := make(chan string, 1)
	go func() {
		c, err := l.DialGuest(context.Background(), 9)
		if err != nil {
			answered <- "dial: " + err.Error()
			return
		}
		defer c.Close()
		io.WriteString(c, "during")
		c.(*Conn).CloseWrite()
		b, _ := io.ReadAll(c)
		answered <- string(b)
	}()
	mu.Lock()
	guestEnd.thaw()
	mu.Unlock()
	l.Release()
	if got := <-answered; got != "during" {
		t.Errorf("stream opened during the pause: %q", got)
	}
	echo(t, l, "after")
	time.Sleep(500 * time.Millisecond) // keepalives run again, and pass
	mu.Lock()
	n := dials
	mu.Unlock()
	if n != 1 {
		t.Errorf("%d carrier dials, want 1: the pause broke the session", n)
	}

	// Without a hold, the same silence takes the link down (the keepalive still works).
	mu.Lock()
	guestEnd.freeze()
	mu.Unlock()
	wantState(t, states, false)
	mu.Lock()
	guestEnd.thaw()
	mu.Unlock()
}
