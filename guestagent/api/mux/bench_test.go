package mux

import (
	"context"
	"io"
	"sync"
	"testing"
)

// BenchmarkStreamOpen opens a stream, echoes one byte and closes it, one after another
// (sequential) and 256 at a time (burst), over a bare session and over a Link with its
// keepalive running: what every forwarded connection pays to reach the guest.
func BenchmarkStreamOpen(b *testing.B) {
	newSession := func(b *testing.B) func(ctx context.Context, service uint32) (io.ReadWriteCloser, error) {
		hc, gc := socketPair(nil)
		b.Cleanup(func() { hc.Close(); gc.Close() })
		cl, err := NewClient(hc)
		if err != nil {
			b.Fatal(err)
		}
		serveEcho(b, gc)
		return func(ctx context.Context, s uint32) (io.ReadWriteCloser, error) { return cl.DialGuest(ctx, s) }
	}
	newLink := func(b *testing.B) func(ctx context.Context, service uint32) (io.ReadWriteCloser, error) {
		g := &hostCarrierB{b: b}
		l := &Link{Dial: g.dial}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		b.Cleanup(func() { cancel(); <-done })
		return func(ctx context.Context, s uint32) (io.ReadWriteCloser, error) { return l.DialGuest(ctx, s) }
	}
	for _, tc := range []struct {
		name string
		open func(*testing.B) func(context.Context, uint32) (io.ReadWriteCloser, error)
	}{{"session", newSession}, {"link", newLink}} {
		for _, par := range []int{1, 256} {
			name := tc.name + "/sequential"
			if par > 1 {
				name = tc.name + "/burst256"
			}
			b.Run(name, func(b *testing.B) {
				dial := tc.open(b)
				b.ResetTimer()
				var wg sync.WaitGroup
				sem := make(chan struct{}, par)
				for range b.N {
					sem <- struct{}{}
					wg.Add(1)
					go func() {
						defer func() { <-sem; wg.Done() }()
						c, err := dial(context.Background(), 9)
						if err != nil {
							b.Error(err)
							return
						}
						defer c.Close()
						c.Write([]byte{1})
						if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			})
		}
	}
}

// serveEcho serves an echo on service 9 over carrier until the benchmark ends.
func serveEcho(b *testing.B, carrier io.ReadWriteCloser) {
	sv, err := NewServer(carrier)
	if err != nil {
		b.Fatal(err)
	}
	l, _ := sv.Listen(9)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sv.Serve(ctx) }()
	go func() {
		for {
			s, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(s, s); s.Close() }()
		}
	}()
	b.Cleanup(func() { cancel(); sv.Close(); <-done })
}

// hostCarrierB hands a Link one socket pair whose guest end serves echo.
type hostCarrierB struct{ b *testing.B }

func (h *hostCarrierB) dial(context.Context) (io.ReadWriteCloser, error) {
	hc, gc := socketPair(nil)
	h.b.Cleanup(func() { hc.Close(); gc.Close() })
	serveEcho(h.b, gc)
	return hc, nil
}
