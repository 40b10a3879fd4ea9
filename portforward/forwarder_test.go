package portforward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

func TestTCPEcho(t *testing.T) {
	for name, newGuest := range map[string]func(testing.TB) *guest{"mux": newMuxGuest, "tcp": newTCPGuest} {
		t.Run(name, func(t *testing.T) {
			g := newGuest(t)
			backend := serveTCPBackend(t, echo)
			p := freePort(t, ProtoTCP)
			g.route(p, backend.Addr())
			f := newForwarder(t, g)
			if err := f.Sync(context.Background(), []api.Port{tcpPort(p)}); err != nil {
				t.Fatal(err)
			}
			st := f.Status()
			if len(st) != 1 || st[0].State != StateForwarding || st[0].HostAddr != "127.0.0.1:"+itoa(p) {
				t.Fatalf("status %+v", st)
			}
			c := dialHost(t, p)
			for _, msg := range []string{"hello", strings.Repeat("x", 1<<20)} {
				got, err := roundTrip(c, msg)
				if err != nil || got != msg {
					t.Fatalf("echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
				}
			}
			reqs := g.requests()
			// A wildcard publish asks the guest to dial its own address (empty IP).
			if len(reqs) != 1 || reqs[0] != (api.ForwardRequest{Proto: "tcp", Port: p}) {
				t.Fatalf("guest saw requests %+v", reqs)
			}
		})
	}
}

func TestTCPHalfClose(t *testing.T) {
	g := newMuxGuest(t)
	backend := serveTCPBackend(t, tail)
	p := freePort(t, ProtoTCP)
	g.route(p, backend.Addr())
	f := newForwarder(t, g)
	f.Sync(context.Background(), []api.Port{tcpPort(p)})
	c := dialHost(t, p)
	if _, err := io.WriteString(c, "twelve bytes"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "got 12 bytes" {
		t.Fatalf("got %q after half-close", got)
	}
}

func TestUDPTwoClients(t *testing.T) {
	g := newMuxGuest(t)
	backend := udpBackend(t)
	p := freePort(t, ProtoUDP)
	g.route(p, backend.LocalAddr())
	f := newForwarder(t, g)
	f.UDPIdleTimeout = 200 * time.Millisecond
	f.Sync(context.Background(), []api.Port{{Proto: "udp", HostIP: "0.0.0.0", HostPort: p, Container: "c"}})
	if st := f.Status(); len(st) != 1 || st[0].State != StateForwarding {
		t.Fatalf("status %+v", st)
	}
	hostAddr := "127.0.0.1:" + itoa(p)
	clients := make([]net.Conn, 2)
	for i := range clients {
		c, err := net.Dial("udp4", hostAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	// ask sends msg from client i and returns the guest-side source address the backend saw.
	ask := func(i int, msg string) string {
		t.Helper()
		c := clients[i]
		buf := make([]byte, 256)
		for try := 0; try < 50; try++ { // UDP: the first datagram may race the flow's setup
			c.Write([]byte(msg))
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				continue
			}
			src, body, _ := strings.Cut(string(buf[:n]), " ")
			if body != msg {
				t.Fatalf("client %d sent %q, got back %q", i, msg, body)
			}
			return src
		}
		t.Fatalf("client %d: no answer to %q", i, msg)
		return ""
	}
	a1, b1 := ask(0, "from a"), ask(1, "from b")
	a2, b2 := ask(0, "again a"), ask(1, "again b")
	if a1 == b1 {
		t.Fatalf("both clients share guest source %s: want one flow per client", a1)
	}
	if a1 != a2 || b1 != b2 {
		t.Fatalf("a flow changed its guest source within the idle timeout: %s->%s, %s->%s", a1, a2, b1, b2)
	}
	// After the idle timeout the flow is gone: the next datagram opens a new guest socket.
	time.Sleep(500 * time.Millisecond)
	if a3 := ask(0, "after idle"); a3 == a1 {
		t.Fatalf("flow of client a outlived the idle timeout (guest source still %s)", a3)
	}
}

func TestExposeThenUnexpose(t *testing.T) {
	g := newMuxGuest(t)
	backend := serveTCPBackend(t, echo)
	p := freePort(t, ProtoTCP)
	g.route(p, backend.Addr())
	f := newForwarder(t, g)
	f.DrainTimeout = 300 * time.Millisecond
	ctx := context.Background()
	f.Sync(ctx, []api.Port{tcpPort(p)})
	inflight := dialHost(t, p)
	if got, err := roundTrip(inflight, "before"); err != nil || got != "before" {
		t.Fatalf("before unexpose: %q, %v", got, err)
	}
	if err := f.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st := f.Status(); len(st) != 0 {
		t.Fatalf("status after unexpose: %+v", st)
	}
	_, err := net.Dial("tcp4", "127.0.0.1:"+itoa(p))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after unexpose: %v, want connection refused", err)
	}
	// The in-flight connection may finish its work...
	if got, err := roundTrip(inflight, "during drain"); err != nil || got != "during drain" {
		t.Fatalf("in-flight conn during drain: %q, %v", got, err)
	}
	// ...but is closed once the drain timeout passes.
	start := time.Now()
	inflight.SetReadDeadline(timeIn(5))
	if n, err := inflight.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("in-flight conn after drain: read %d, %v; want it closed", n, err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("in-flight conn closed after %v, want about the 300ms drain", waited)
	}
	// Exposing again binds again.
	f.Sync(ctx, []api.Port{tcpPort(p)})
	if got, err := roundTrip(dialHost(t, p), "again"); err != nil || got != "again" {
		t.Fatalf("after re-expose: %q, %v", got, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestBusyPortRetried(t *testing.T) {
	g := newMuxGuest(t)
	backend := serveTCPBackend(t, echo)
	squatter, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := portOf(squatter.Addr())
	g.route(p, backend.Addr())
	f := newForwarder(t, g)
	other := freePort(t, ProtoTCP)
	g.route(other, backend.Addr())
	if err := f.Sync(context.Background(), []api.Port{tcpPort(p), tcpPort(other)}); err != nil {
		t.Fatalf("a busy port must not fail Sync: %v", err)
	}
	st := f.Status()
	busy := st[0]
	if busy.Port != p {
		busy = st[1]
	}
	if busy.State != StateError || !busy.Retrying || !strings.Contains(busy.Error, "address already in use") {
		t.Fatalf("busy port status %+v", busy)
	}
	// The other port is unaffected.
	if got, err := roundTrip(dialHost(t, other), "ok"); err != nil || got != "ok" {
		t.Fatalf("other port: %q, %v", got, err)
	}
	squatter.Close()
	eventually(t, "the freed port to be bound", func() bool {
		for _, s := range f.Status() {
			if s.Port == p {
				return s.State == StateForwarding && s.Error == "" && !s.Retrying
			}
		}
		return false
	})
	if got, err := roundTrip(dialHost(t, p), "freed"); err != nil || got != "freed" {
		t.Fatalf("after the port was freed: %q, %v", got, err)
	}
}

func TestBusyPortRemovedStopsRetrying(t *testing.T) {
	g := newMuxGuest(t)
	squatter, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := portOf(squatter.Addr())
	f := newForwarder(t, g)
	f.Sync(context.Background(), []api.Port{tcpPort(p)})
	f.Sync(context.Background(), nil)
	squatter.Close()
	time.Sleep(200 * time.Millisecond) // ten retry intervals
	if _, err := net.Dial("tcp4", "127.0.0.1:"+itoa(p)); err == nil {
		t.Fatal("a removed busy port was bound once freed")
	}
}

func TestInvalidPortsRejected(t *testing.T) {
	g := newMuxGuest(t)
	backend := serveTCPBackend(t, echo)
	p := freePort(t, ProtoTCP)
	g.route(p, backend.Addr())
	f := newForwarder(t, g)
	good := tcpPort(p)
	ports := []api.Port{
		good,
		{Proto: "sctp", HostIP: "0.0.0.0", HostPort: 9, Container: "c"},
		{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 0, Container: "c"},
		{Proto: "udp", HostIP: "0.0.0.0", HostPort: 10, Container: ""},
		{Proto: "tcp", HostIP: "not-an-ip", HostPort: 11, Container: "c"},
		// Same host socket as good: 10.0.2.15 maps to the host's 127.0.0.1 as well.
		{Proto: "tcp", HostIP: "10.0.2.15", HostPort: p, Container: "c2"},
	}
	if err := f.Sync(context.Background(), ports); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, s := range f.Status() {
		if s.Port == p && s.GuestIP == "0.0.0.0" {
			if s.State != StateForwarding {
				t.Fatalf("valid port: %+v", s)
			}
			continue
		}
		if s.State != StateError || s.Error == "" || s.Retrying {
			t.Errorf("invalid entry %+v: want state error with a reason, no retry", s)
		}
		reasons[s.Proto+"/"+s.GuestIP+"/"+itoa(s.Port)] = s.Error
	}
	for key, want := range map[string]string{
		"sctp/0.0.0.0/9":           "protocol",
		"tcp/0.0.0.0/0":            "port 0",
		"udp/0.0.0.0/10":           "container",
		"tcp/not-an-ip/11":         "host IP",
		"tcp/10.0.2.15/" + itoa(p): "already forwards",
	} {
		if !strings.Contains(reasons[key], want) {
			t.Errorf("%s: reason %q, want it to mention %q", key, reasons[key], want)
		}
	}
	for _, port := range []string{"9", "10", "11"} {
		if c, err := net.Dial("tcp4", "127.0.0.1:"+port); err == nil {
			c.Close()
			t.Errorf("something listens on rejected port %s", port)
		}
	}
	// Once the conflicting entry is alone it is forwarded.
	f.Sync(context.Background(), ports[5:])
	if st := f.Status(); len(st) != 1 || st[0].State != StateForwarding || st[0].HostAddr != "127.0.0.1:"+itoa(p) {
		t.Fatalf("status %+v", st)
	}
	if reqs := g.requests(); len(reqs) != 0 {
		t.Fatalf("guest dialed for invalid entries: %+v", reqs)
	}
}

func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal(Forward{Proto: "tcp", GuestIP: "0.0.0.0", Port: 80, HostAddr: "127.0.0.1:80",
		Container: "c", State: StateError, Error: "busy", Retrying: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"proto":"tcp","guest_ip":"0.0.0.0","port":80,"host_addr":"127.0.0.1:80","container":"c","state":"error","error":"busy","retrying":true}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	g := newMuxGuest(t)
	backend := serveTCPBackend(t, echo)
	p := freePort(t, ProtoTCP)
	g.route(p, backend.Addr())
	f := &Forwarder{Dial: g.Dial, DrainTimeout: time.Hour}
	f.Sync(context.Background(), []api.Port{tcpPort(p)})
	c := dialHost(t, p)
	roundTrip(c, "x")
	done := make(chan error)
	go func() { done <- f.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection survived Close: %v", err)
	}
	if err := f.Sync(context.Background(), []api.Port{tcpPort(p)}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Sync after Close: %v, want net.ErrClosed", err)
	}
}

func TestServeUnixSocket(t *testing.T) {
	// The Docker API socket: a unix listener forwarded to one guest service.
	g := newMuxGuest(t)
	backend := serveTCPBackend(t, tail)
	g.route(2375, backend.Addr())
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, func(ctx context.Context) (net.Conn, error) {
			return g.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 2375})
		})
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(timeIn(10))
	io.WriteString(c, "GET /_ping")
	c.(*net.UnixConn).CloseWrite()
	got, _ := io.ReadAll(c)
	if string(got) != "got 10 bytes" {
		t.Fatalf("got %q", got)
	}
	held, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.SetDeadline(timeIn(10))
	io.WriteString(held, "x")
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel with a connection open")
	}
	if _, err := held.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection survived cancel: %v", err)
	}
}

func TestGuestDialerSendsRequestAndHonoursContext(t *testing.T) {
	hostEnd, guestEnd := net.Pipe()
	defer guestEnd.Close()
	var service uint32
	d := GuestDialer(func(ctx context.Context, s uint32) (net.Conn, error) { service = s; return hostEnd, nil })
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 128)
		n, _ := guestEnd.Read(buf)
		got <- string(buf[:n])
	}()
	c, err := d(context.Background(), api.ForwardRequest{Proto: "udp", Port: 53, IP: "::1"})
	if err != nil {
		t.Fatal(err)
	}
	if line := <-got; line != `{"proto":"udp","port":53,"ip":"::1"}`+"\n" || service != api.ServiceForward {
		t.Fatalf("service %d, request line %q", service, line)
	}
	c.Close()

	// Nobody reads this pipe: the write blocks until ctx ends.
	stuck, _ := net.Pipe()
	d = GuestDialer(func(context.Context, uint32) (net.Conn, error) { return stuck, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := d(ctx, api.ForwardRequest{Proto: "tcp", Port: 80}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

func haveIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
}

func TestIPv4AndIPv6OfOnePort(t *testing.T) {
	haveIPv6Loopback(t)
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("PublishAllInterfaces=%v", all), func(t *testing.T) {
			g := newMuxGuest(t)
			backend := serveTCPBackend(t, echo)
			p := freePort(t, ProtoTCP)
			g.route(p, backend.Addr())
			f := newForwarder(t, g)
			f.PublishAllInterfaces = all
			v4, v6 := tcpPort(p), tcpPort(p)
			v6.HostIP = "::"
			f.Sync(context.Background(), []api.Port{v4, v6})
			want := map[string]string{"0.0.0.0": "127.0.0.1:" + itoa(p), "::": "[::1]:" + itoa(p)}
			if all {
				want = map[string]string{"0.0.0.0": "0.0.0.0:" + itoa(p), "::": "[::]:" + itoa(p)}
			}
			for _, s := range f.Status() {
				if s.State != StateForwarding || s.HostAddr != want[s.GuestIP] {
					t.Fatalf("%s: %+v, want forwarding on %s", s.GuestIP, s, want[s.GuestIP])
				}
			}
			for _, addr := range []string{"127.0.0.1:" + itoa(p), "[::1]:" + itoa(p)} {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(timeIn(10))
				got, err := roundTrip(c, "via "+addr)
				c.Close()
				if err != nil || got != "via "+addr {
					t.Fatalf("%s: %q, %v", addr, got, err)
				}
			}
			ips := map[string]bool{}
			for _, r := range g.requests() {
				ips[r.IP] = true
			}
			if !ips[""] || !ips["::1"] {
				t.Fatalf("guest was asked for %v, want its own IPv4 address (empty) and IPv6 loopback", ips)
			}
		})
	}
}
