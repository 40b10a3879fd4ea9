package streamproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// echoUntilEOF answers each connection with what it read, after the client's half-close.
func echoUntilEOF(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(append([]byte("got:"), b...))
			}()
		}
	}()
	return l
}

func TestProxyHalfClose(t *testing.T) {
	backend := echoUntilEOF(t)
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	go func() {
		c, err := front.Accept()
		if err != nil {
			return
		}
		Proxy(context.Background(), c, func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", backend.Addr().String())
		}, nil)
	}()
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got:ping" {
		t.Fatalf("read %q, %v: the half-close did not reach the backend or its reply was lost", got, err)
	}
}

func TestProxyDialErrorClosesSource(t *testing.T) {
	a, b := net.Pipe()
	var reported error
	done := make(chan struct{})
	go func() {
		Proxy(context.Background(), b, func(context.Context) (net.Conn, error) { return nil, errors.New("no guest") },
			func(err error) { reported = err })
		close(done)
	}()
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("source read after a failed dial: %v, want EOF", err)
	}
	<-done
	if reported == nil || reported.Error() != "no guest" {
		t.Errorf("onDialError got %v", reported)
	}
}

func TestProxyContextEndClosesBoth(t *testing.T) {
	backend := echoUntilEOF(t)
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Proxy(ctx, b, func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", backend.Addr().String())
		}, nil)
		close(done)
	}()
	a.Write([]byte("x")) // the proxy is now copying
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Proxy did not return after its context ended")
	}
}
