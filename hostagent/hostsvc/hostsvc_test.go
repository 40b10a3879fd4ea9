package hostsvc

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/machine-run/machine/guestagent/api"
)

// fakeResolver answers from tables, like a host whose /etc/hosts and VPN know the names.
type fakeResolver struct {
	ips   map[string][]netip.Addr
	cname map[string]string
	mx    map[string][]*net.MX
	txt   map[string][]string
	ptr   map[string][]string
	fail  error
	asked []string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, network+" "+host)
	if r.fail != nil {
		return nil, r.fail
	}
	if a, ok := r.ips[host]; ok {
		return a, nil
	}
	return nil, notFound(host)
}
func (r *fakeResolver) LookupCNAME(_ context.Context, host string) (string, error) {
	if c, ok := r.cname[host]; ok {
		return c, nil
	}
	return "", notFound(host)
}
func (r *fakeResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if m, ok := r.mx[name]; ok {
		return m, nil
	}
	return nil, notFound(name)
}
func (r *fakeResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if t, ok := r.txt[name]; ok {
		return t, nil
	}
	return nil, notFound(name)
}
func (r *fakeResolver) LookupNS(_ context.Context, name string) ([]*net.NS, error) {
	return nil, notFound(name)
}
func (r *fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	return "", nil, notFound(name)
}
func (r *fakeResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if n, ok := r.ptr[addr]; ok {
		return n, nil
	}
	return nil, notFound(addr)
}

func query(t *testing.T, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unpack(t *testing.T, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return m
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		h := rr.Header()
		out = append(out, rr.String()[len(h.String()):])
	}
	return out
}

func TestAnswer(t *testing.T) {
	r := &fakeResolver{
		ips: map[string][]netip.Addr{
			"vpn.corp": {netip.MustParseAddr("::ffff:10.1.2.3"), netip.MustParseAddr("fd00::1")},
			"v4only":   {netip.MustParseAddr("192.0.2.1")},
		},
		cname: map[string]string{"www.corp": "web.corp", "self.corp": "self.corp."},
		mx:    map[string][]*net.MX{"corp": {{Host: "mail.corp.", Pref: 10}}},
		txt:   map[string][]string{"corp": {"v=spf1 -all"}},
		ptr:   map[string][]string{"10.1.2.3": {"vpn.corp."}, "fd00::1": {"six.corp."}},
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"vpn.corp.", dns.TypeA, dns.RcodeSuccess, []string{"10.1.2.3"}},
		{"vpn.corp.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00::1"}},
		// The name exists without an IPv6 address: NOERROR and no answer, never NXDOMAIN.
		{"v4only.", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"nowhere.", dns.TypeA, dns.RcodeNameError, nil},
		{"www.corp.", dns.TypeCNAME, dns.RcodeSuccess, []string{"web.corp."}},
		{"self.corp.", dns.TypeCNAME, dns.RcodeSuccess, nil},
		{"corp.", dns.TypeMX, dns.RcodeSuccess, []string{"10 mail.corp."}},
		{"corp.", dns.TypeTXT, dns.RcodeSuccess, []string{`"v=spf1 -all"`}},
		{"3.2.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"vpn.corp."}},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"six.corp."}},
		{"bad.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil},
		{"corp.", dns.TypeSOA, dns.RcodeNotImplemented, nil},
	} {
		q := query(t, tc.name, tc.qtype)
		m := unpack(t, Answer(context.Background(), r, q))
		if m.Id != unpack(t, q).Id || !m.Response || !m.RecursionAvailable {
			t.Errorf("%s %s: header id %d response %v ra %v", tc.name, dns.TypeToString[tc.qtype], m.Id, m.Response, m.RecursionAvailable)
		}
		if m.Rcode != tc.rcode || !slices.Equal(answers(m), tc.want) {
			t.Errorf("%s %s: %s %q, want %s %q", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode], answers(m), dns.RcodeToString[tc.rcode], tc.want)
		}
		for _, rr := range m.Answer {
			if rr.Header().Ttl != answerTTL {
				t.Errorf("%s: TTL %d, want %d", tc.name, rr.Header().Ttl, answerTTL)
			}
		}
	}
	// Go's resolver matches /etc/hosts only without the root dot.
	if !slices.Contains(r.asked, "ip vpn.corp") {
		t.Errorf("asked the resolver %q, want the name without its root dot", r.asked)
	}
}

func TestAnswerFailures(t *testing.T) {
	r := &fakeResolver{fail: errors.New("network unreachable")}
	if m := unpack(t, Answer(context.Background(), r, query(t, "x.", dns.TypeA))); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("a failing resolver: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if b := Answer(context.Background(), r, []byte{1, 2, 3}); b != nil {
		t.Errorf("a query without a header got %q", b)
	}
	garbage := append([]byte{0xab, 0xcd}, make([]byte, 20)...)
	garbage[5] = 9 // nine questions that are not there
	if m := unpack(t, Answer(context.Background(), r, garbage)); m.Rcode != dns.RcodeFormatError || m.Id != 0xabcd {
		t.Errorf("garbage: %s id %#x, want FORMERR for id 0xabcd", dns.RcodeToString[m.Rcode], m.Id)
	}
	two := new(dns.Msg)
	two.Question = []dns.Question{{Name: "a.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, {Name: "b.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	b, _ := two.Pack()
	if m := unpack(t, Answer(context.Background(), r, b)); m.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %s, want FORMERR", dns.RcodeToString[m.Rcode])
	}
}

// serve hands one end of a loopback TCP pair (it half-closes, as channel streams do) to the
// server's handler for service, as the channel does after the status byte, and returns the
// guest's end.
func serve(t *testing.T, s *Server, service uint32) net.Conn {
	t.Helper()
	h := s.Handler(service)
	if h == nil {
		t.Fatalf("service %d not served", service)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	guest, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	host, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go h(host)
	t.Cleanup(func() { guest.Close() })
	return guest
}

func TestDNSStream(t *testing.T) {
	s := &Server{Resolver: &fakeResolver{ips: map[string][]netip.Addr{"vpn.corp": {netip.MustParseAddr("10.1.2.3")}}}}
	defer s.Close()
	c := serve(t, s, api.ServiceHostDNS)
	buf := make([]byte, api.MaxDatagram)
	for i := 0; i < 3; i++ { // one stream carries query after query
		if err := api.WriteDatagram(c, query(t, "vpn.corp.", dns.TypeA)); err != nil {
			t.Fatal(err)
		}
		n, err := api.ReadDatagram(c, buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := answers(unpack(t, buf[:n])); !slices.Equal(got, []string{"10.1.2.3"}) {
			t.Fatalf("query %d: %q", i, got)
		}
	}
}

func TestHandlerServices(t *testing.T) {
	s := &Server{}
	defer s.Close()
	for _, svc := range []uint32{api.ServiceHostConnect, api.ServiceHostDNS} {
		if s.Handler(svc) == nil {
			t.Errorf("service %d not served", svc)
		}
	}
	if s.Handler(api.ServiceControl) != nil {
		t.Error("the host serves a guest-only service")
	}
}

func connect(t *testing.T, s *Server, proto string, port int) (net.Conn, byte) {
	t.Helper()
	c := serve(t, s, api.ServiceHostConnect)
	if err := api.WriteHostConnect(c, api.HostConnectRequest{Proto: proto, Port: uint16(port)}); err != nil {
		t.Fatal(err)
	}
	var st [1]byte
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, st[:]); err != nil {
		t.Fatalf("status: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	return c, st[0]
}

// recordDials makes s dial for real and remember where.
func recordDials(s *Server) *[]string {
	var dialed []string
	d := &net.Dialer{}
	s.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, network+" "+addr)
		return d.DialContext(ctx, network, addr)
	}
	return &dialed
}

func TestConnectTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c) // until the guest half-closes
		c.Write(append([]byte("got "), b...))
		c.Close()
	}()
	s := &Server{HostAccess: true}
	dialed := recordDials(s)
	defer s.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c, st := connect(t, s, "tcp", port)
	if st != api.HostConnectOK {
		t.Fatalf("status %d, want OK", st)
	}
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	if string(b) != "got hello" {
		t.Errorf("through the host connection: %q", b)
	}
	if want := "tcp " + l.Addr().String(); len(*dialed) != 1 || (*dialed)[0] != want {
		t.Errorf("dialed %q, want only %q (the host's loopback)", *dialed, want)
	}
}

func TestConnectUDP(t *testing.T) {
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
			pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	s := &Server{HostAccess: true}
	defer s.Close()
	c, st := connect(t, s, "udp", pc.LocalAddr().(*net.UDPAddr).Port)
	if st != api.HostConnectOK {
		t.Fatalf("status %d, want OK", st)
	}
	buf := make([]byte, api.MaxDatagram)
	for _, msg := range []string{"one", "", "three"} {
		api.WriteDatagram(c, []byte(msg))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := api.ReadDatagram(c, buf)
		if err != nil || string(buf[:n]) != "echo "+msg {
			t.Fatalf("datagram %q: reply %q, %v", msg, buf[:n], err)
		}
	}
}

func TestConnectRefusedAndDisabled(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	on := &Server{HostAccess: true}
	defer on.Close()
	if _, st := connect(t, on, "tcp", closed); st != api.HostConnectRefused {
		t.Errorf("a closed port: status %d, want refused", st)
	}
	off := &Server{}
	dialed := recordDials(off)
	defer off.Close()
	if _, st := connect(t, off, "tcp", closed); st != api.HostConnectDisabled {
		t.Errorf("host access off: status %d, want disabled", st)
	}
	if len(*dialed) != 0 {
		t.Errorf("host access off, yet the host dialed %q", *dialed)
	}
}

func TestCloseEndsStreams(t *testing.T) {
	s := &Server{}
	c := serve(t, s, api.ServiceHostDNS)
	s.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after Close the stream reads %v, want EOF", err)
	}
}
