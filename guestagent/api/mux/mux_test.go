package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// pair connects a Client and a Server over an in-memory pipe, as the serial port would.
func pair(t *testing.T) (*Client, *Server) {
	t.Helper()
	hc, gc := socketPair(t)
	cl, err := NewClient(hc)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := NewServer(gc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		cl.Close()
		<-done
	})
	return cl, sv
}

func TestConnConformance(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		cl, sv := pairNoCleanup()
		l, err := sv.Listen(7)
		if err != nil {
			return nil, nil, nil, err
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		c1, err = cl.DialGuest(context.Background(), 7)
		if err != nil {
			return nil, nil, nil, err
		}
		c2 = <-accepted
		return c1, c2, func() {
			c1.Close()
			c2.Close()
			l.Close()
			cl.Close()
			sv.Close()
		}, nil
	})
}

func pairNoCleanup() (*Client, *Server) {
	hc, gc := socketPair(nil)
	cl, _ := NewClient(hc)
	sv, _ := NewServer(gc)
	go sv.Serve(context.Background())
	return cl, sv
}

// guestStream dials service 9 over a fresh pair whose guest end runs serve on the accepted
// stream (and closes it after).
func guestStream(t *testing.T, serve func(net.Conn)) net.Conn {
	t.Helper()
	cl, sv := pair(t)
	l, err := sv.Listen(9)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	c, err := cl.DialGuest(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHalfClose(t *testing.T) {
	// The guest side echoes everything until EOF, then writes a trailer and closes.
	c := guestStream(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write(append(b, []byte(" done")...))
	})
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello done" {
		t.Fatalf("read %q after half-close, want %q", got, "hello done")
	}
}

func TestDialUnknownService(t *testing.T) {
	cl, _ := pair(t)
	_, err := cl.DialGuest(context.Background(), 12345)
	if !errors.Is(err, ErrNoService) {
		t.Fatalf("dial unknown service: err = %v, want ErrNoService", err)
	}
}

func TestDialWaitsForGuestThenHonoursContext(t *testing.T) {
	hc, _ := socketPair(t) // nobody reads the guest end: the agent has not started
	cl, err := NewClient(hc)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = cl.DialGuest(ctx, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial with no guest: err = %v, want deadline exceeded", err)
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	_, sv := pair(t)
	l, _ := sv.Listen(3)
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v, want net.ErrClosed", err)
	}
	if _, err := sv.Listen(3); err != nil {
		t.Fatalf("listen again after close: %v", err)
	}
}

// socketPair returns two connected loopback TCP sockets: buffered like the QEMU chardev socket
// the host really talks to (unlike net.Pipe), and portable to every OS.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	b, err := l.Accept()
	if err != nil {
		panic(err)
	}
	if t != nil {
		t.Cleanup(func() { a.Close(); b.Close() })
	}
	return a, b
}

// A stream half-closed by the host (a docker CLI without -i closes stdin at once) must carry
// the guest's answer for as long as the guest keeps sending, not only for a close timeout.
func TestHalfClosedStreamOutlivesTheCloseLinger(t *testing.T) {
	defer closeLinger.Store(closeLinger.Load())
	closeLinger.Store(int64(50 * time.Millisecond))
	c := guestStream(t, func(c net.Conn) {
		io.ReadAll(c) // the host's EOF
		for _, part := range []string{"one ", "two ", "three"} {
			time.Sleep(150 * time.Millisecond) // each well past closeLinger
			c.Write([]byte(part))
		}
	})
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "one two three" {
		t.Fatalf("after a half-close the host read %q, %v; want all of %q", got, err, "one two three")
	}
}

// After a full Close the host still reads and discards what the guest sends, so the guest's
// writes (a forwarder copying from a server that has not seen the end yet) do not block on
// the stream's window, and it sees the end once it closes.
func TestClosedStreamDrainsThePeer(t *testing.T) {
	wrote := make(chan error, 1)
	c := guestStream(t, func(c net.Conn) {
		io.ReadAll(c) // the host's close
		buf := make([]byte, 64<<10)
		for i := 0; i < 32; i++ { // 2 MiB: far more than a stream's window
			if _, err := c.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	})
	reading := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); reading <- err }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-reading; !errors.Is(err, net.ErrClosed) {
		t.Errorf("a Read pending at Close returned %v, want net.ErrClosed", err)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("guest write: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the guest's writes blocked after the host closed the stream")
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
}
