package portforward

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/mux"
	guestforward "github.com/machine-run/machine/guestagent/forward"
)

// guest is an in-process stand-in for the VM: the real guest relay (forward.Serve) behind a
// real channel. Host and "guest" share this process's network, so a published port P is
// served in the guest by a backend on another port: routes maps P to it, and the dialer
// rewrites each request on its way in, after checking the address it was asked to reach.
type guest struct {
	mu     sync.Mutex
	routes map[uint16]uint16
	reqs   []api.ForwardRequest
	dial   func(ctx context.Context, service uint32) (net.Conn, error)
}

// newMuxGuest connects through the yamux channel the serial transport uses, over a loopback
// TCP pair standing in for the serial port.
func newMuxGuest(t testing.TB) *guest {
	hc, gc := tcpPair(t)
	cl, err := mux.NewClient(hc)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := mux.NewServer(gc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := sv.Listen(api.ServiceForward)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sv.Serve(ctx) }()
	go func() { defer wg.Done(); guestforward.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		cl.Close()
		sv.Close()
		wg.Wait()
	})
	return &guest{routes: map[uint16]uint16{}, dial: cl.DialGuest}
}

// newTCPGuest reaches the guest relay over plain loopback TCP, one connection per stream
// (as vsock would be).
func newTCPGuest(t testing.TB) *guest {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); guestforward.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()
	return &guest{routes: map[uint16]uint16{}, dial: func(ctx context.Context, service uint32) (net.Conn, error) {
		if service != api.ServiceForward {
			return nil, fmt.Errorf("service %d: %w", service, mux.ErrNoService)
		}
		return new(net.Dialer).DialContext(ctx, "tcp", addr)
	}}
}

// route makes guest port published reach backend.
func (g *guest) route(published uint16, backend net.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.routes[published] = portOf(backend)
}

// Dial is the DialFunc the Forwarder under test uses.
func (g *guest) Dial(ctx context.Context, req api.ForwardRequest) (net.Conn, error) {
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	backend, ok := g.routes[req.Port]
	g.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake guest: no route for port %d", req.Port)
	}
	req.Port = backend
	if req.IP != "127.0.0.1" { // only the IPv4 loopback has backends here
		req.IP = "127.0.0.1"
	}
	return GuestDialer(g.dial)(ctx, req)
}

func (g *guest) requests() []api.ForwardRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]api.ForwardRequest(nil), g.reqs...)
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
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
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func portOf(a net.Addr) uint16 {
	_, p, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(p)
	return uint16(n)
}

// freePort returns a port that was free on 127.0.0.1 for proto a moment ago.
func freePort(t testing.TB, proto string) uint16 {
	t.Helper()
	if proto == ProtoUDP {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return portOf(pc.LocalAddr())
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return portOf(l.Addr())
}

// serveTCPBackend runs handle on every connection to a fresh loopback listener.
func serveTCPBackend(t testing.TB, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln
}

// echo copies everything back, then closes. The wrappers hide *net.TCPConn from io.Copy:
// TCP-to-TCP copies splice through a pipe pair (two more fds per connection, pooled until
// a GC), which would blur the descriptor counts of the leak tests.
func echo(c net.Conn) { io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c}) }

// tail reads to EOF, then reports the count: the answer arrives only if the client's
// half-close passed through and the other direction stayed open.
func tail(c net.Conn) {
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprintf(c, "got %d bytes", n)
}

// udpBackend echoes datagrams prefixed with the sender's address as the backend saw it.
func udpBackend(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, api.MaxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(from.String()+" "+string(buf[:n])), from)
		}
	}()
	return pc
}

// newForwarder returns a Forwarder through g with fast retries, closed at cleanup.
func newForwarder(t testing.TB, g *guest) *Forwarder {
	f := &Forwarder{Dial: g.Dial, RetryInterval: 20 * time.Millisecond, DrainTimeout: time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	t.Cleanup(func() { f.Close() })
	return f
}

func tcpPort(port uint16) api.Port {
	return api.Port{Proto: ProtoTCP, HostIP: "0.0.0.0", HostPort: port, Container: "c0ffee"}
}

func dialHost(t testing.TB, port uint16) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// roundTrip writes msg and reads the same number of bytes back.
func roundTrip(c net.Conn, msg string) (string, error) {
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func timeIn(seconds int) time.Time { return time.Now().Add(time.Duration(seconds) * time.Second) }
