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

// TestDialHostOverLink opens streams from the guest's serial channel to host services
// served by the host's Link, before and after the carrier is cut and redialled.
func TestDialHostOverLink(t *testing.T) {
	guestEnds := make(chan net.Conn, 4)
	open := func() (io.ReadWriteCloser, error) {
		c, ok := <-guestEnds
		if !ok {
			return nil, io.EOF
		}
		return c, nil
	}
	ch := serialChannel(open, []uint32{api.ServiceExec}, "", slog.New(slog.DiscardHandler))
	gctx, gcancel := context.WithCancel(context.Background())
	gdone := make(chan struct{})
	go func() { ch.Serve(gctx); close(gdone) }()
	t.Cleanup(func() { gcancel(); close(guestEnds); <-gdone })

	states := make(chan mux.LinkState, 8)
	link := &mux.Link{
		Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			h, g := socketPair(t)
			if _, err := io.WriteString(h, mux.Preamble); err != nil {
				return nil, err
			}
			guestEnds <- g
			return h, nil
		},
		KeepAliveInterval: 20 * time.Millisecond,
		KeepAliveTimeout:  2 * time.Second,
		OnChange:          func(s mux.LinkState) { states <- s },
		Host: func(service uint32) func(net.Conn) {
			if service != api.ServiceHostConnect {
				return nil
			}
			return func(c net.Conn) {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(append([]byte("host: "), b...))
			}
		},
	}
	runLink(t, link)
	want := func(up bool) { t.Helper(); wantLinkState(t, states, up) }
	roundTrip := func(msg string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := ch.DialHost(ctx, api.ServiceHostConnect)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, msg)
		c.(*mux.Conn).CloseWrite()
		if b, err := io.ReadAll(c); err != nil || string(b) != "host: "+msg {
			t.Fatalf("reply %q, %v", b, err)
		}
	}
	want(true)
	roundTrip("one")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ch.DialHost(ctx, api.ServiceHostDNS); err == nil {
		t.Error("a service the host does not serve opened")
	}
	link.Cut()
	want(false)
	want(true)
	roundTrip("two")
}
