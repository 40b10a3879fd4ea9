package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mdlayher/vsock"
	"golang.org/x/net/nettest"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/mux"
)

func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// serialHarness runs a serial Channel whose "device" is a fresh socket pair per open; hosts
// receives the host end of each session.
func serialHarness(t *testing.T, services ...uint32) (*Channel, chan *mux.Client) {
	hosts := make(chan *mux.Client, 4)
	open := func() (io.ReadWriteCloser, error) {
		h, g := socketPair(t)
		if _, err := io.WriteString(h, mux.Preamble); err != nil {
			return nil, err
		}
		cl, err := mux.NewClient(h)
		if err != nil {
			return nil, err
		}
		hosts <- cl
		return g, nil
	}
	ch := serialChannel(open, services, "", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ch.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ch, hosts
}

func TestSerialConnConformance(t *testing.T) {
	ch, hosts := serialHarness(t, api.ServiceExec)
	host := <-hosts
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ch.Listener(api.ServiceExec).Accept()
			accepted <- c
		}()
		c1, err = host.DialGuest(context.Background(), api.ServiceExec)
		if err != nil {
			return nil, nil, nil, err
		}
		c2 = <-accepted
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
}

// TestSerialSurvivesHostReconnect: the host hangs up; the same guest listener serves the next
// session, as when the host agent restarts.
func TestSerialSurvivesHostReconnect(t *testing.T) {
	ch, hosts := serialHarness(t, api.ServiceControl)
	l := ch.Listener(api.ServiceControl)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	for session := 0; session < 2; session++ {
		var host *mux.Client
		select {
		case host = <-hosts:
		case <-time.After(10 * time.Second):
			t.Fatalf("session %d never opened", session)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := host.DialGuest(ctx, api.ServiceControl)
		cancel()
		if err != nil {
			t.Fatalf("session %d: %v", session, err)
		}
		b, _ := io.ReadAll(c)
		if string(b) != "hi" {
			t.Fatalf("session %d: read %q", session, b)
		}
		c.Close()
		host.Close()
	}
}

type fakeConn struct {
	net.Conn
	remote net.Addr
	closed chan struct{}
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { close(c.closed); return nil }

type fakeListener struct{ conns chan net.Conn }

func (l *fakeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &vsock.Addr{ContextID: 3, Port: 2400} }

func TestVsockAcceptsOnlyTheHost(t *testing.T) {
	src := &fakeListener{conns: make(chan net.Conn, 2)}
	other := &fakeConn{remote: &vsock.Addr{ContextID: 7, Port: 1}, closed: make(chan struct{})}
	host := &fakeConn{remote: &vsock.Addr{ContextID: api.HostCID, Port: 1}, closed: make(chan struct{})}
	src.conns <- other
	src.conns <- host
	close(src.conns)
	l := newListener(mux.Addr(api.ServiceControl))
	go l.feed(src, fromHost(slog.New(slog.DiscardHandler)))
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if c != host {
		t.Fatalf("accepted %v, want the host's conn", c.RemoteAddr())
	}
	select {
	case <-other.closed:
	case <-time.After(time.Second):
		t.Fatal("conn from CID 7 was not closed")
	}
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}

func TestFindSerialPortWithoutUdev(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev")
	sys := filepath.Join(dir, "sys")
	os.MkdirAll(filepath.Join(dev, "virtio-ports"), 0o755)
	os.MkdirAll(filepath.Join(sys, "vport1p1"), 0o755)
	os.MkdirAll(filepath.Join(sys, "vport1p2"), 0o755)
	os.WriteFile(filepath.Join(sys, "vport1p1", "name"), []byte("org.qemu.guest_agent.0\n"), 0o644)
	os.WriteFile(filepath.Join(sys, "vport1p2", "name"), []byte(api.SerialPortName+"\n"), 0o644)
	ctx := context.Background()
	link := filepath.Join(dev, "virtio-ports")
	if _, err := WaitSerialPort(ctx, link, sys, api.SerialPortName, 50*time.Millisecond); err == nil {
		t.Fatal("found a port whose device node does not exist")
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		os.WriteFile(filepath.Join(dev, "vport1p2"), nil, 0o600)
	}()
	p, err := WaitSerialPort(ctx, link, sys, api.SerialPortName, 5*time.Second)
	if err != nil || p != filepath.Join(dev, "vport1p2") {
		t.Fatalf("port %q, %v", p, err)
	}
	os.WriteFile(filepath.Join(link, api.SerialPortName), nil, 0o600)
	if p, _ := WaitSerialPort(ctx, link, sys, api.SerialPortName, time.Second); p != filepath.Join(link, api.SerialPortName) {
		t.Fatalf("udev symlink not preferred: %q", p)
	}
}

// TestNextReopenDelay: with no host the port is polled with a backoff capped at 250 ms, and a
// served session resets it, so after a break (a host asleep, a redial) the next carrier is
// picked up at once rather than after a backoff grown over earlier sessions.
func TestNextReopenDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		last   time.Duration
		served bool
		want   time.Duration
	}{
		{0, false, 20 * ms},
		{20 * ms, false, 40 * ms},
		{160 * ms, false, 250 * ms},
		{250 * ms, false, 250 * ms},
		{250 * ms, true, 20 * ms},
	} {
		if got := nextReopenDelay(tc.last, tc.served); got != tc.want {
			t.Errorf("nextReopenDelay(%v, %v) = %v, want %v", tc.last, tc.served, got, tc.want)
		}
	}
}
