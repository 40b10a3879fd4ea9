package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	serverID = net.IPv4(10, 0, 0, 1).To4()
	mac      = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
)

// fakeServer answers DHCP messages on a loopback UDP socket through handle; a nil reply
// drops the message, as a lost packet would.
type fakeServer struct {
	conn   *net.UDPConn
	mu     sync.Mutex
	seen   []*dhcpv4.DHCPv4
	at     []time.Time
	handle func(n int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4
}

func newServer(t *testing.T, handle func(n int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4) *fakeServer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{conn: conn, handle: handle}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				t.Errorf("server: bad packet: %v", err)
				continue
			}
			s.mu.Lock()
			s.seen = append(s.seen, req)
			s.at = append(s.at, time.Now())
			h, i := s.handle, len(s.seen)-1
			s.mu.Unlock()
			if reply := h(i, req); reply != nil {
				conn.WriteTo(reply.ToBytes(), from)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

func (s *fakeServer) setHandle(h func(n int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4) {
	s.mu.Lock()
	s.handle = h
	s.mu.Unlock()
}

// kinds names the messages seen so far: D(iscover), R(equest) to select, N for a renewal
// (a REQUEST with ciaddr set), ? otherwise.
func (s *fakeServer) kinds() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ""
	for _, m := range s.seen {
		switch {
		case m.MessageType() == dhcpv4.MessageTypeDiscover:
			k += "D"
		case m.MessageType() == dhcpv4.MessageTypeRequest && m.ClientIPAddr.IsUnspecified():
			k += "R"
		case m.MessageType() == dhcpv4.MessageTypeRequest:
			k += "N"
		default:
			k += "?"
		}
	}
	return k
}

func (s *fakeServer) msg(i int) (*dhcpv4.DHCPv4, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[i], s.at[i]
}

func reply(t *testing.T, req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, addr string, lease time.Duration) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverID))}
	if typ != dhcpv4.MessageTypeNak {
		mods = append(mods,
			dhcpv4.WithYourIP(net.ParseIP(addr)),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(serverID),
			dhcpv4.WithDNS(serverID),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)))
	}
	m, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		t.Errorf("reply: %v", err)
	}
	return m
}

// grant offers addr to every DISCOVER and acknowledges every REQUEST.
func grant(t *testing.T, addr string, lease time.Duration) func(int, *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	return func(_ int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		if req.MessageType() == dhcpv4.MessageTypeDiscover {
			return reply(t, req, dhcpv4.MessageTypeOffer, addr, lease)
		}
		return reply(t, req, dhcpv4.MessageTypeAck, addr, lease)
	}
}

type applied struct {
	mu    sync.Mutex
	calls [][2]Lease
}

func (a *applied) apply(_ context.Context, prev, next Lease) error {
	a.mu.Lock()
	a.calls = append(a.calls, [2]Lease{prev, next})
	a.mu.Unlock()
	return nil
}

func (a *applied) get() [][2]Lease {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][2]Lease(nil), a.calls...)
}

func newClient(t *testing.T, s *fakeServer, a *applied) *Client {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{
		Conn: conn, HWAddr: mac, Server: s.conn.LocalAddr().(*net.UDPAddr),
		Hostname: "dev", Apply: a.apply,
		GiveUp: 5 * time.Second, Timeout: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOfferRequestAck(t *testing.T) {
	s := newServer(t, grant(t, "10.0.0.5", time.Hour))
	var a applied
	c := newClient(t, s, &a)
	l, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr != netip.MustParsePrefix("10.0.0.5/24") || l.Router != netip.MustParseAddr("10.0.0.1") || l.Duration != time.Hour {
		t.Fatalf("lease %v", l)
	}
	if k := s.kinds(); k != "DR" {
		t.Fatalf("server saw %q, want DR", k)
	}
	req, _ := s.msg(1)
	if got := req.RequestedIPAddress(); !got.Equal(net.ParseIP("10.0.0.5")) {
		t.Errorf("REQUEST asks for %v (option 50)", got)
	}
	if got := req.ServerIdentifier(); !got.Equal(serverID) {
		t.Errorf("REQUEST names server %v (option 54)", got)
	}
	if got := req.HostName(); got != "dev" {
		t.Errorf("REQUEST host name %q", got)
	}
	calls := a.get()
	if len(calls) != 1 || calls[0][0].Addr.IsValid() || calls[0][1].Addr != l.Addr {
		t.Fatalf("apply calls %v", calls)
	}
	if c.Lease().Addr != l.Addr {
		t.Fatalf("Lease() = %v", c.Lease())
	}
}

func TestNakStartsOver(t *testing.T) {
	s := newServer(t, nil)
	s.setHandle(func(n int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		switch n {
		case 0:
			return reply(t, req, dhcpv4.MessageTypeOffer, "10.0.0.5", time.Hour)
		case 1:
			return reply(t, req, dhcpv4.MessageTypeNak, "", 0)
		}
		return grant(t, "10.0.0.6", time.Hour)(n, req)
	})
	var a applied
	l, err := newClient(t, s, &a).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k := s.kinds(); k != "DRDR" || l.Addr.Addr() != netip.MustParseAddr("10.0.0.6") {
		t.Fatalf("server saw %q, lease %v", k, l)
	}
	if calls := a.get(); len(calls) != 1 {
		t.Fatalf("apply calls %v", calls)
	}
}

func TestTimeoutsRetry(t *testing.T) {
	s := newServer(t, nil)
	s.setHandle(func(n int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		if n < 2 || n == 3 { // lose two DISCOVERs, then the first REQUEST
			return nil
		}
		return grant(t, "10.0.0.5", time.Hour)(n, req)
	})
	var a applied
	start := time.Now()
	l, err := newClient(t, s, &a).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k := s.kinds(); k != "DDDRDR" || !l.Addr.IsValid() {
		t.Fatalf("server saw %q, lease %v", k, l)
	}
	// Three lost replies: three 100 ms timeouts and the backoff pauses between attempts.
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("took %v: no timeouts were waited for", took)
	}
}

// TestGiveUpThenKeepTrying: with no server, Start returns ErrNoLease after GiveUp, and the
// lease still arrives in the background once a server answers.
func TestGiveUpThenKeepTrying(t *testing.T) {
	s := newServer(t, func(int, *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return nil })
	var a applied
	c := newClient(t, s, &a)
	c.GiveUp = 500 * time.Millisecond
	start := time.Now()
	_, err := c.Start(context.Background())
	if !errors.Is(err, ErrNoLease) {
		t.Fatalf("err = %v, want ErrNoLease", err)
	}
	if took := time.Since(start); took < 500*time.Millisecond || took > 2*time.Second {
		t.Fatalf("gave up after %v, want about 500ms", took)
	}
	if n := len(s.kinds()); n < 2 {
		t.Fatalf("only %d DISCOVERs before giving up", n)
	}
	s.setHandle(grant(t, "10.0.0.9", time.Hour))
	waitFor(t, "a lease in the background", 3*time.Second, func() bool { return c.Lease().Addr.IsValid() })
	if calls := a.get(); len(calls) != 1 || calls[0][1].Addr.Addr() != netip.MustParseAddr("10.0.0.9") {
		t.Fatalf("apply calls %v", calls)
	}
}

// TestRenewAtT1: a 1 s lease is renewed at T1 (500 ms) with ciaddr set, and an unchanged
// renewal does not reconfigure the interface.
func TestRenewAtT1(t *testing.T) {
	s := newServer(t, grant(t, "10.0.0.5", time.Second))
	var a applied
	c := newClient(t, s, &a)
	if _, err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, acked := s.msg(1)
	waitFor(t, "two renewals", 3*time.Second, func() bool { return s.kinds() == "DRNN" || len(s.kinds()) > 4 })
	if k := s.kinds(); k != "DRNN" {
		t.Fatalf("server saw %q, want DRNN", k)
	}
	for i, want := range []time.Duration{500 * time.Millisecond, time.Second} {
		m, at := s.msg(2 + i)
		if d := at.Sub(acked); d < want-50*time.Millisecond || d > want+300*time.Millisecond {
			t.Errorf("renewal %d after %v, want about %v", i+1, d, want)
		}
		if !m.ClientIPAddr.Equal(net.ParseIP("10.0.0.5")) {
			t.Errorf("renewal %d ciaddr %v", i+1, m.ClientIPAddr)
		}
	}
	if calls := a.get(); len(calls) != 1 {
		t.Fatalf("apply calls %v, want only the first", calls)
	}
}

// TestRenewNakReacquires: a refused renewal leads to a new DISCOVER, and the new address
// replaces the old one.
func TestRenewNakReacquires(t *testing.T) {
	s := newServer(t, nil)
	s.setHandle(func(n int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		switch {
		case n < 2:
			return grant(t, "10.0.0.5", time.Second)(n, req)
		case n == 2:
			return reply(t, req, dhcpv4.MessageTypeNak, "", 0)
		}
		return grant(t, "10.0.0.7", time.Hour)(n, req)
	})
	var a applied
	c := newClient(t, s, &a)
	if _, err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second apply", 3*time.Second, func() bool { return len(a.get()) == 2 })
	calls := a.get()
	if calls[1][0].Addr.Addr() != netip.MustParseAddr("10.0.0.5") || calls[1][1].Addr.Addr() != netip.MustParseAddr("10.0.0.7") {
		t.Fatalf("second apply %v -> %v", calls[1][0], calls[1][1])
	}
	if k := s.kinds(); k != "DRNDR" {
		t.Fatalf("server saw %q, want DRNDR", k)
	}
}

// TestExpiryReacquires: unanswered renewals are retried until the lease expires, then the
// client starts over with a DISCOVER.
func TestExpiryReacquires(t *testing.T) {
	s := newServer(t, nil)
	s.setHandle(func(n int, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		if req.MessageType() == dhcpv4.MessageTypeRequest && !req.ClientIPAddr.IsUnspecified() {
			return nil // renewals are lost
		}
		return grant(t, "10.0.0.5", time.Second)(n, req)
	})
	var a applied
	c := newClient(t, s, &a)
	if _, err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, acked := s.msg(1)
	waitFor(t, "a DISCOVER after expiry", 3*time.Second, func() bool { return strings.Contains(s.kinds()[2:], "D") })
	k := s.kinds()
	i := 2 + strings.Index(k[2:], "D")
	_, at := s.msg(i)
	if d := at.Sub(acked); d < time.Second-50*time.Millisecond {
		t.Fatalf("started over %v after the ack, before the 1 s lease expired (%q)", d, k)
	}
	if renewals := strings.Count(k[:i], "N"); renewals < 2 || renewals != i-2 {
		t.Fatalf("want at least 2 renewal attempts and nothing else before expiry: %q", k)
	}
}

func TestCloseStopsRenewals(t *testing.T) {
	s := newServer(t, grant(t, "10.0.0.5", time.Second))
	var a applied
	c := newClient(t, s, &a)
	if _, err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if k := s.kinds(); k != "DR" {
		t.Fatalf("server saw %q after Close", k)
	}
}
