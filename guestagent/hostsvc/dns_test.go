package hostsvc

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/machine-run/machine/guestagent/api"
)

// hostDNS answers DNS streams as the host agent does (datagram frames), from a table.
func hostDNS(t *testing.T, names map[string]string, dials *atomic.Int32) DialHost {
	return func(ctx context.Context, service uint32) (net.Conn, error) {
		if service != api.ServiceHostDNS {
			return nil, errors.New("wrong service")
		}
		dials.Add(1)
		guest, host := net.Pipe()
		go func() {
			defer host.Close()
			buf := make([]byte, api.MaxDatagram)
			for {
				n, err := api.ReadDatagram(host, buf)
				if err != nil {
					return
				}
				req := new(dns.Msg)
				req.Unpack(buf[:n])
				m := new(dns.Msg)
				m.SetReply(req)
				q := req.Question[0]
				if ip, ok := names[q.Name]; ok && q.Qtype == dns.TypeA {
					m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 10}, A: net.ParseIP(ip)}}
				} else if strings.HasPrefix(q.Name, "big.") {
					for i := 0; i < 60; i++ {
						m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 10}, A: net.IPv4(10, 0, 0, byte(i))})
					}
				} else if !ok {
					m.Rcode = dns.RcodeNameError
				}
				b, _ := m.Pack()
				api.WriteDatagram(host, b)
			}
		}()
		return guest, nil
	}
}

func ask(t *testing.T, d *DNS, name string, qtype uint16, maxSize int) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	b, _ := q.Pack()
	reply := d.Answer(context.Background(), b, maxSize)
	m := new(dns.Msg)
	if err := m.Unpack(reply); err != nil {
		t.Fatalf("%s: reply does not parse: %v", name, err)
	}
	if m.Id != q.Id {
		t.Fatalf("%s: reply id %d, query id %d", name, m.Id, q.Id)
	}
	return m
}

func TestDNSAnswersHostNamesItself(t *testing.T) {
	var dials atomic.Int32
	d := &DNS{Dial: hostDNS(t, nil, &dials), HostAccess: true}
	defer d.Close()
	for _, name := range []string{"host.docker.internal.", "gateway.docker.internal.", "Host.Docker.Internal."} {
		m := ask(t, d, name, dns.TypeA, 512)
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != api.HostGatewayIP || m.Rcode != dns.RcodeSuccess {
			t.Errorf("%s A: %v", name, m.Answer)
		}
		if m := ask(t, d, name, dns.TypeAAAA, 512); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
			t.Errorf("%s AAAA: %s %v, want NOERROR and no answer", name, dns.RcodeToString[m.Rcode], m.Answer)
		}
	}
	if dials.Load() != 0 {
		t.Errorf("the host names went to the host (%d dials)", dials.Load())
	}
}

func TestDNSHostAccessOffForwardsHostNames(t *testing.T) {
	var dials atomic.Int32
	d := &DNS{Dial: hostDNS(t, nil, &dials)}
	defer d.Close()
	if m := ask(t, d, "host.docker.internal.", dns.TypeA, 512); m.Rcode != dns.RcodeNameError {
		t.Errorf("host access off: %s %v, want the host's NXDOMAIN", dns.RcodeToString[m.Rcode], m.Answer)
	}
}

func TestDNSForwardsAndReusesStreams(t *testing.T) {
	var dials atomic.Int32
	d := &DNS{Dial: hostDNS(t, map[string]string{"vpn.corp.": "10.9.8.7"}, &dials), HostAccess: true}
	defer d.Close()
	for i := 0; i < 5; i++ {
		m := ask(t, d, "vpn.corp.", dns.TypeA, 512)
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.9.8.7" {
			t.Fatalf("query %d: %v", i, m.Answer)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d streams for 5 queries in a row, want 1 reused", n)
	}
	if m := ask(t, d, "nowhere.", dns.TypeA, 512); m.Rcode != dns.RcodeNameError {
		t.Errorf("nowhere: %s", dns.RcodeToString[m.Rcode])
	}
}

func TestDNSTruncatesForUDP(t *testing.T) {
	var dials atomic.Int32
	d := &DNS{Dial: hostDNS(t, nil, &dials)}
	defer d.Close()
	if m := ask(t, d, "big.corp.", dns.TypeA, 512); !m.Truncated || len(m.Answer) >= 60 {
		t.Errorf("UDP: truncated %v with %d answers, want TC and fewer than 60", m.Truncated, len(m.Answer))
	}
	if m := ask(t, d, "big.corp.", dns.TypeA, 0); m.Truncated || len(m.Answer) != 60 {
		t.Errorf("TCP: truncated %v with %d answers, want all 60", m.Truncated, len(m.Answer))
	}
}

func TestDNSHostDownIsServfail(t *testing.T) {
	d := &DNS{Dial: func(context.Context, uint32) (net.Conn, error) { return nil, errors.New("channel down") }}
	if m := ask(t, d, "vpn.corp.", dns.TypeA, 512); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("host down: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if b := d.Answer(context.Background(), []byte("junk"), 512); b != nil {
		t.Errorf("junk got a reply %q", b)
	}
}

// A reused stream the host has dropped (a channel reconnect) is replaced transparently.
func TestDNSRetriesADeadIdleStream(t *testing.T) {
	var dials atomic.Int32
	d := &DNS{Dial: hostDNS(t, map[string]string{"vpn.corp.": "10.9.8.7"}, &dials)}
	defer d.Close()
	ask(t, d, "vpn.corp.", dns.TypeA, 512)
	d.mu.Lock()
	for _, c := range d.idle {
		c.Close()
	}
	d.mu.Unlock()
	if m := ask(t, d, "vpn.corp.", dns.TypeA, 512); len(m.Answer) != 1 {
		t.Errorf("after the idle stream died: %s %v", dns.RcodeToString[m.Rcode], m.Answer)
	}
}

func TestServeUDPAndTCP(t *testing.T) {
	var dials atomic.Int32
	d := &DNS{Dial: hostDNS(t, map[string]string{"vpn.corp.": "10.9.8.7"}, &dials), HostAccess: true}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pc, ln := udpAndTCPOnOnePort(t)
	go d.ServeUDP(ctx, pc)
	go d.ServeTCP(ctx, ln)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, network, pc.LocalAddr().String())
	}}
	for _, network := range []string{"ip4"} {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := r.LookupNetIP(ctx, network, "vpn.corp")
		cancel()
		if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("10.9.8.7") {
			t.Errorf("UDP lookup: %v, %v", got, err)
		}
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("host.docker.internal.", dns.TypeA)
	b, _ := q.Pack()
	api.WriteDatagram(c, b)
	buf := make([]byte, api.MaxDatagram)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := api.ReadDatagram(c, buf)
	m := new(dns.Msg)
	if err != nil || m.Unpack(buf[:n]) != nil || len(m.Answer) != 1 {
		t.Errorf("TCP query: %v %v", err, m.Answer)
	}
}

func TestResolvConfServers(t *testing.T) {
	conf := "# by dhcp\nnameserver 10.0.2.3\nnameserver 192.168.65.7\nsearch lan\nnameserver fd00::53\nnameserver bogus\n"
	got := ResolvConfServers(conf, api.DNSServerIP)
	if want := []string{"10.0.2.3:53", "[fd00::53]:53"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ResolvConfServers = %q, want %q", got, want)
	}
}

// When the host cannot be reached (vz without host services, a channel break) the
// hypervisor's DNS still answers.
func TestDNSFallsBackWhenTheHostIsUnreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			req.Unpack(buf[:n])
			m := new(dns.Msg)
			m.SetReply(req)
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(10, 0, 2, 99)}}
			b, _ := m.Pack()
			pc.WriteTo(b, from)
		}
	}()
	d := &DNS{
		Dial:     func(context.Context, uint32) (net.Conn, error) { return nil, errors.New("connection reset") },
		Fallback: []string{pc.LocalAddr().String()},
	}
	if m := ask(t, d, "example.org.", dns.TypeA, 512); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.0.2.99" {
		t.Errorf("fallback: %s %v", dns.RcodeToString[m.Rcode], m.Answer)
	}
}

// udpAndTCPOnOnePort listens on one loopback port for both UDP and TCP, as a DNS server
// does. The UDP port is picked by the kernel and may already be taken for TCP by another
// test's connection, so it tries a few.
func udpAndTCPOnOnePort(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			t.Cleanup(func() { pc.Close(); ln.Close() })
			return pc, ln
		}
		pc.Close()
		lastErr = err
	}
	t.Fatalf("no loopback port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}
