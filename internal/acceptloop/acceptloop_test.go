package acceptloop

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRunServesAndWaitsForHandlers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var finished atomic.Int32
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, ln, nil, func(c net.Conn) {
			defer c.Close()
			c.Write([]byte("hi"))
			<-release
			finished.Add(1)
		})
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b := make([]byte, 2)
		if _, err := c.Read(b); err != nil || string(b) != "hi" {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while handlers were still running")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after its context ended")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if finished.Load() != 3 {
		t.Errorf("%d handlers finished, want 3", finished.Load())
	}
}

// flaky fails Accept with EMFILE a few times, then with a permanent error.
type flaky struct {
	net.Listener
	emfile int
	closed atomic.Bool
}

func (f *flaky) Accept() (net.Conn, error) {
	if f.emfile > 0 {
		f.emfile--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return nil, errors.New("permanent")
}

func (f *flaky) Close() error { f.closed.Store(true); return nil }

func TestRunRetriesShortageAndFailsOnOtherErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	f := &flaky{Listener: ln, emfile: 3}
	err := Run(context.Background(), f, nil, func(net.Conn) {})
	if err == nil || !strings.Contains(err.Error(), "permanent") {
		t.Fatalf("Run = %v, want the permanent error", err)
	}
	if f.emfile != 0 {
		t.Errorf("EMFILE not retried: %d left", f.emfile)
	}
	if !f.closed.Load() {
		t.Error("listener not closed after a fatal accept error")
	}
}
