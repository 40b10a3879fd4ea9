package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// guestSide serves echo on service 9 over every carrier handed to it, one session per carrier,
// as the guest agent reopens its serial port after a session ends.
type guestSide struct {
	carriers chan net.Conn
	mu       sync.Mutex
	sessions int
}

func newGuestSide(t *testing.T) *guestSide {
	g := &guestSide{carriers: make(chan net.Conn, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var c net.Conn
			select {
			case c = <-g.carriers:
			case <-ctx.Done():
				return
			}
			sv, err := NewServer(c)
			if err != nil {
				t.Error(err)
				return
			}
			g.mu.Lock()
			g.sessions++
			g.mu.Unlock()
			l, _ := sv.Listen(9)
			go func() {
				for {
					s, err := l.Accept()
					if err != nil {
						return
					}
					go func() { io.Copy(s, s); s.Close() }()
				}
			}()
			sv.Serve(ctx)
			c.Close()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// hostCarrier hands out socket pairs: the host end to the Link, the guest end to g. While
// held is set, dials wait for it to be closed, as when QEMU's socket is not there yet.
type hostCarrier struct {
	t     *testing.T
	g     *guestSide
	mu    sync.Mutex
	dials int
	held  chan struct{}
	cur   *stallable
	// stallNext makes the next carrier dialled mute from the start.
	stallNext bool
	// trickle, when set, slows what the guest writes to the host to about this many bytes
	// per second, in small pieces, as a busy guest behind a slow serial port answers.
	trickle int
}

func (h *hostCarrier) dial(ctx context.Context) (io.ReadWriteCloser, error) {
	h.mu.Lock()
	held := h.held
	h.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	hc, gc := socketPair(h.t)
	s := &stallable{Conn: hc, closed: make(chan struct{})}
	h.mu.Lock()
	if h.stallNext {
		s.stalled.Store(true)
		h.stallNext = false
	}
	h.dials++
	h.cur = s
	rate := h.trickle
	h.mu.Unlock()
	if rate > 0 {
		gc = &trickleConn{Conn: gc, rate: rate}
	}
	h.g.carriers <- gc
	return s, nil
}

// stallable is a carrier that, once stalled, swallows what it reads and never returns: the
// guest looks alive to the socket but answers nothing, so only a keepalive can tell.
type stallable struct {
	net.Conn
	stalled atomic.Bool
	once    sync.Once
	closed  chan struct{}
}

func (s *stallable) Read(p []byte) (int, error) {
	for {
		n, err := s.Conn.Read(p)
		if !s.stalled.Load() {
			return n, err
		}
		if err != nil {
			<-s.closed
			return 0, err
		}
	}
}

// trickleConn writes at most about rate bytes per second, 256 bytes at a time: bytes keep
// arriving, but a frame queued behind a large one waits long.
type trickleConn struct {
	net.Conn
	rate int
}

func (c *trickleConn) Write(p []byte) (int, error) {
	const piece = 256
	n := 0
	for n < len(p) {
		k := min(piece, len(p)-n)
		time.Sleep(time.Duration(k) * time.Second / time.Duration(c.rate))
		w, err := c.Conn.Write(p[n : n+k])
		n += w
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *stallable) Close() error { s.once.Do(func() { close(s.closed) }); return s.Conn.Close() }

func startLink(t *testing.T, h *hostCarrier, interval, timeout time.Duration) (*Link, chan LinkState) {
	states := make(chan LinkState, 16)
	l := &Link{Dial: h.dial, KeepAliveInterval: interval, KeepAliveTimeout: timeout, OnChange: func(s LinkState) { states <- s }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, states
}

func wantState(t *testing.T, states <-chan LinkState, up bool) LinkState {
	t.Helper()
	select {
	case s := <-states:
		if s.Up != up {
			t.Fatalf("link state %+v, want up=%v", s, up)
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("link never went up=%v", up)
	}
	return LinkState{}
}

func echo(t *testing.T, l *Link, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.DialGuest(ctx, 9)
	if err != nil {
		t.Fatalf("dial after the link is up: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	c.(*Conn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		t.Fatalf("echo %q, %v; want %q", got, err, msg)
	}
}

func TestLinkRedialsAfterTheCarrierIsCut(t *testing.T) {
	g := newGuestSide(t)
	h := &hostCarrier{t: t, g: g}
	l, states := startLink(t, h, 20*time.Millisecond, 200*time.Millisecond)
	wantState(t, states, true)
	echo(t, l, "before")

	// A stream open across the cut fails instead of hanging.
	open, err := l.DialGuest(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := l.Cut(); err != nil {
		t.Fatal(err)
	}
	down := wantState(t, states, false)
	if !errors.Is(down.Err, ErrLinkDown) || !strings.Contains(down.Err.Error(), "carrier closed") {
		t.Errorf("down reason %v", down.Err)
	}
	open.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ne net.Error
	if _, err := open.Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("read on a stream of the cut session: %v, want a prompt error", err)
	}
	wantState(t, states, true)
	echo(t, l, "after")
	h.mu.Lock()
	dials := h.dials
	h.mu.Unlock()
	if dials != 2 {
		t.Errorf("%d carrier dials, want 2", dials)
	}
}

func TestLinkKeepaliveNoticesASilentCarrier(t *testing.T) {
	g := newGuestSide(t)
	h := &hostCarrier{t: t, g: g}
	l, states := startLink(t, h, 20*time.Millisecond, 200*time.Millisecond)
	wantState(t, states, true)

	// Nothing closes: the pongs just stop arriving. Redials wait until released.
	h.mu.Lock()
	h.held = make(chan struct{})
	h.cur.stalled.Store(true)
	h.mu.Unlock()
	down := wantState(t, states, false)
	if !errors.Is(down.Err, ErrLinkDown) || !strings.Contains(down.Err.Error(), "did not answer a keepalive") {
		t.Errorf("down reason %v", down.Err)
	}
	// While down, a dial waits, bounded by its context.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := l.DialGuest(ctx, 9); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial on a down link: %v, want the context's deadline", err)
	}
	// A dial made during the break succeeds once the channel is back.
	dialed := make(chan error, 1)
	go func() {
		c, err := l.DialGuest(context.Background(), 9)
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	h.mu.Lock()
	close(h.held)
	h.held = nil
	h.mu.Unlock()
	wantState(t, states, true)
	if err := <-dialed; err != nil {
		t.Errorf("dial made while down: %v", err)
	}
	echo(t, l, "after")
}

func TestLinkDialAfterRunEndsFails(t *testing.T) {
	g := newGuestSide(t)
	h := &hostCarrier{t: t, g: g}
	l := &Link{Dial: h.dial}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	cancel()
	<-done
	if _, err := l.DialGuest(context.Background(), 9); !errors.Is(err, ErrLinkDown) {
		t.Errorf("dial after the link ended: %v, want ErrLinkDown", err)
	}
}

// TestLinkGivesUpOnAMuteRedial: a redialled carrier on which the guest never answers (it lost
// the carrier's start) is dropped after ProveTimeout and the next one is tried.
func TestLinkGivesUpOnAMuteRedial(t *testing.T) {
	g := newGuestSide(t)
	h := &hostCarrier{t: t, g: g}
	states := make(chan LinkState, 16)
	l := &Link{Dial: h.dial, KeepAliveInterval: 20 * time.Millisecond, KeepAliveTimeout: 2 * time.Second,
		ProveTimeout: 100 * time.Millisecond, OnChange: func(s LinkState) { states <- s }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wantState(t, states, true)
	h.mu.Lock()
	h.stallNext = true
	h.mu.Unlock()
	l.Cut()
	wantState(t, states, false)
	wantState(t, states, true)
	echo(t, l, "third carrier")
	h.mu.Lock()
	dials := h.dials
	h.mu.Unlock()
	if dials != 3 {
		t.Errorf("%d dials, want 3 (first, mute, good)", dials)
	}
}

// TestLinkKeepsABusySlowCarrier: a guest whose answers queue behind a large frame on a slow
// port is busy, not gone. Its pongs arrive long after the keepalive timeout, but its bytes
// keep coming, so the link must stay up and the stream carrying them must complete. (A 4,096
// connection burst under emulation made the guest answer late: the link tore the session
// down and every forwarded connection on it ended.)
func TestLinkKeepsABusySlowCarrier(t *testing.T) {
	g := newGuestSide(t)
	// 16 KiB echoed at 8 KiB/s: one frame that takes 2 s, a piece every 31 ms, and pongs that
	// wait behind it for up to 2 s against a 1 s keepalive timeout (a loaded host stalls a
	// goroutine for a few hundred ms, never for the whole timeout).
	h := &hostCarrier{t: t, g: g, trickle: 8 << 10}
	l, states := startLink(t, h, 10*time.Millisecond, time.Second)
	wantState(t, states, true)

	const size = 16 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.DialGuest(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		c.Write(make([]byte, size))
		c.(*Conn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != size {
		t.Errorf("echoed %d of %d bytes through a slow carrier: %v", n, size, err)
	}
	select {
	case s := <-states:
		t.Errorf("the link changed state while the guest was busy: %+v", s)
	default:
	}
	h.mu.Lock()
	dials := h.dials
	h.mu.Unlock()
	if dials != 1 {
		t.Errorf("%d carrier dials, want 1", dials)
	}
}

// TestRedialDelay: carriers that fail at once back off to a second; after a served session
// or an attempt that waited out its bound (a frozen VM) the next dial is immediate, so a
// resumed guest is not kept waiting by a backoff built up while it was frozen.
func TestRedialDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		last   time.Duration
		proven bool
		took   time.Duration
		want   time.Duration
	}{
		{0, false, 0, 50 * ms},
		{50 * ms, false, ms, 100 * ms},
		{800 * ms, false, ms, time.Second},
		{time.Second, false, ms, time.Second},
		{time.Second, true, 10 * time.Second, 50 * ms},
		{time.Second, false, 5 * time.Second, 50 * ms},
	} {
		if got := redialDelay(tc.last, tc.proven, tc.took); got != tc.want {
			t.Errorf("redialDelay(%v, %v, %v) = %v, want %v", tc.last, tc.proven, tc.took, got, tc.want)
		}
	}
}
