package portforward

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/machine-run/machine/guestagent/api"
)

func TestBindAddr(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		all  bool
		want string
	}{
		{"0.0.0.0", false, "127.0.0.1:80"},
		{"", false, "127.0.0.1:80"},
		{"::", false, "[::1]:80"},
		{"0.0.0.0", true, "0.0.0.0:80"},
		{"", true, "0.0.0.0:80"},
		{"::", true, "[::]:80"},
		{"127.0.0.1", false, "127.0.0.1:80"},
		{"127.0.0.1", true, "127.0.0.1:80"},
		{"127.0.0.2", false, "127.0.0.2:80"},
		{"::1", false, "[::1]:80"},
		{"::1", true, "[::1]:80"},
		{"::ffff:127.0.0.1", false, "127.0.0.1:80"},
		{"::ffff:0.0.0.0", true, "0.0.0.0:80"},
		{"10.0.2.15", false, "127.0.0.1:80"},
		{"10.0.2.15", true, "127.0.0.1:80"},
		{"192.168.1.20", true, "127.0.0.1:80"},
		{"fd00::15", false, "[::1]:80"},
		{"fd00::15", true, "[::1]:80"},
		{"fe80::1%eth0", false, "[::1]:80"},
	} {
		got, err := bindAddr(tc.ip, 80, tc.all)
		if err != nil {
			t.Errorf("bindAddr(%q, all=%v): %v", tc.ip, tc.all, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("bindAddr(%q, all=%v) = %s, want %s", tc.ip, tc.all, got, tc.want)
		}
	}
	for _, bad := range []string{"localhost", "1.2.3", "::g"} {
		if a, err := bindAddr(bad, 80, false); err == nil {
			t.Errorf("bindAddr(%q) = %s, want an error", bad, a)
		}
	}
}

func TestGuestTarget(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"", ""},
		{"0.0.0.0", ""},
		{"127.0.0.1", "127.0.0.1"},
		{"::", "::1"},
		{"::1", "::1"},
		{"10.0.2.15", "10.0.2.15"},
		{"fd00::15", "fd00::15"},
	} {
		got := GuestTarget(api.Port{Proto: "udp", HostIP: tc.ip, HostPort: 53})
		if got.IP != tc.want || got.Port != 53 || got.Proto != "udp" {
			t.Errorf("GuestTarget(%q) = %+v, want IP %s", tc.ip, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := api.Port{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 80, Container: "abc"}
	if err := validate(ok); err != nil {
		t.Fatalf("valid port rejected: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*api.Port)
		reason string
	}{
		{"sctp", func(p *api.Port) { p.Proto = "sctp" }, "protocol"},
		{"upper case", func(p *api.Port) { p.Proto = "TCP" }, "protocol"},
		{"port 0", func(p *api.Port) { p.HostPort = 0 }, "port 0"},
		{"no container", func(p *api.Port) { p.Container = "" }, "container"},
		{"bad ip", func(p *api.Port) { p.HostIP = "nope" }, "host IP"},
	} {
		p := ok
		tc.change(&p)
		err := validate(p)
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: got %v, want an error about %s", tc.name, err, tc.reason)
		}
	}
}

func TestLoopbackPeer(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.3.2.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("192.168.1.2"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1}, false},
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}, false},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, false},
	} {
		if got := loopbackPeer(tc.addr); got != tc.want {
			t.Errorf("loopbackPeer(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// scriptedPacketConn returns its datagrams in order, then net.ErrClosed.
type scriptedPacketConn struct {
	net.PacketConn
	from []net.Addr
}

func (s *scriptedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if len(s.from) == 0 {
		return 0, nil, net.ErrClosed
	}
	a := s.from[0]
	s.from = s.from[1:]
	return copy(b, a.String()), a, nil
}

func TestLoopbackPacketConnDropsRemotePeers(t *testing.T) {
	udp := func(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	pc := loopbackPacketConn{&scriptedPacketConn{from: []net.Addr{
		udp("192.168.1.9:5000"), udp("127.0.0.1:5001"), udp("[fe80::2]:5002"), udp("[::1]:5003"),
	}}}
	buf := make([]byte, 64)
	var got []string
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		got = append(got, from.String())
	}
	if strings.Join(got, " ") != "127.0.0.1:5001 [::1]:5003" {
		t.Fatalf("delivered from %v, want only the loopback peers", got)
	}
}

func TestLoopbackListenerRefusesRemotePeers(t *testing.T) {
	remote := nonLoopbackIPv4(t)
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := loopbackListener{ln}
	defer ll.Close()
	port := portOf(ln.Addr())
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ll.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	// The remote peer connects first (the kernel completes the handshake), but is never
	// handed out: the first accepted conn must be the loopback one.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: remote}}
	rc, err := d.Dial("tcp4", net.JoinHostPort(remote.String(), itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rc.SetReadDeadline(timeIn(5))
	if n, err := rc.Read(make([]byte, 1)); err == nil {
		t.Fatalf("remote peer read %d bytes, want its conn closed", n)
	}
	lc, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	c := <-accepted
	defer c.Close()
	if !loopbackPeer(c.RemoteAddr()) {
		t.Fatalf("accepted %v", c.RemoteAddr())
	}
}

// nonLoopbackIPv4 finds an address of this host that is not loopback, or skips.
func nonLoopbackIPv4(t *testing.T) net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.To4()
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return nil
}
