package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/mux"
)

// TestLinkAndSerialChannelRecoverFromACut runs the host's Link against the guest's serial
// channel with a token, as on Windows's TCP chardev: a cut carrier is noticed, the host
// redials and presents the token again, the guest serves the new session on the same
// listener, and a new stream works while the stream open across the cut fails.
func TestLinkAndSerialChannelRecoverFromACut(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	guestEnds := make(chan net.Conn, 4)
	open := func() (io.ReadWriteCloser, error) {
		c, ok := <-guestEnds
		if !ok {
			return nil, io.EOF
		}
		return c, nil
	}
	ch := serialChannel(open, []uint32{api.ServiceExec}, token, slog.New(slog.DiscardHandler))
	gctx, gcancel := context.WithCancel(context.Background())
	gdone := make(chan struct{})
	go func() { ch.Serve(gctx); close(gdone) }()
	t.Cleanup(func() { gcancel(); close(guestEnds); <-gdone })
	go func() {
		l := ch.Listener(api.ServiceExec)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	dials := 0
	states := make(chan mux.LinkState, 8)
	link := &mux.Link{
		Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			h, g := socketPair(t)
			dials++
			if _, err := io.WriteString(h, mux.Preamble+token+"\n"); err != nil {
				return nil, err
			}
			guestEnds <- g
			return h, nil
		},
		KeepAliveInterval: 20 * time.Millisecond,
		KeepAliveTimeout:  2 * time.Second,
		OnChange:          func(s mux.LinkState) { states <- s },
	}
	runLink(t, link)
	want := func(up bool) { t.Helper(); wantLinkState(t, states, up) }
	roundTrip := func(msg string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := link.DialGuest(ctx, api.ServiceExec)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, msg)
		c.(*mux.Conn).CloseWrite()
		if b, err := io.ReadAll(c); err != nil || string(b) != msg {
			t.Fatalf("echo %q, %v", b, err)
		}
	}
	want(true)
	roundTrip("one")
	open1, err := link.DialGuest(context.Background(), api.ServiceExec)
	if err != nil {
		t.Fatal(err)
	}
	defer open1.Close()
	link.Cut()
	want(false)
	open1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := open1.Read(make([]byte, 1)); err == nil {
		t.Error("a stream of the cut session still reads")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("a stream of the cut session hung until its deadline: %v", err)
	}
	want(true)
	roundTrip("two")
	if dials != 2 {
		t.Errorf("%d dials, want 2", dials)
	}
}

// runLink runs link until the test ends.
func runLink(t *testing.T, link *mux.Link) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { link.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// wantLinkState waits for the link's next state change and fails unless it is up (or down).
func wantLinkState(t *testing.T, states <-chan mux.LinkState, up bool) {
	t.Helper()
	select {
	case s := <-states:
		if s.Up != up {
			t.Fatalf("link %+v, want up=%v", s, up)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("link never went up=%v", up)
	}
}
