package hostsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/internal/acceptloop"
)

// DialHost opens a stream to a host service.
type DialHost func(ctx context.Context, service uint32) (net.Conn, error)

// exchangeTimeout bounds one query's round trip to the host (its resolver has its own
// bound); the client retries on its own.
const exchangeTimeout = 10 * time.Second

// maxIdleStreams DNS streams are kept open for the next queries.
const maxIdleStreams = 4

// hostNameTTL is the TTL of the answers for api.HostNames.
const hostNameTTL = 60

// DNS answers queries from the guest and its containers: host.docker.internal and
// gateway.docker.internal itself (when HostAccess is on), the rest through the host.
type DNS struct {
	Dial       DialHost
	HostAccess bool
	// Fallback are nameservers (host:port) asked directly when the host cannot be reached
	// (the channel is down, or a host agent without DNS): the hypervisor's, from the
	// resolv.conf the network set-up wrote.
	Fallback []string
	Log      *slog.Logger

	mu   sync.Mutex
	idle []net.Conn
}

// Answer returns the reply to one query, or nil when it cannot be parsed at all. maxSize
// (UDP) truncates a longer reply the way DNS servers do; 0 means no limit (TCP).
func (d *DNS) Answer(ctx context.Context, query []byte, maxSize int) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		return nil
	}
	if m := d.local(req); m != nil {
		return pack(m, req, maxSize)
	}
	reply, err := d.exchange(ctx, query)
	if err != nil && len(d.Fallback) > 0 {
		d.log().Debug("dns: the host did not answer; asking the fallback", "name", questionName(req), "err", err)
		reply, err = d.fallback(ctx, query)
	}
	if err != nil {
		d.log().Warn("dns: no answer", "name", questionName(req), "err", err)
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		return pack(m, req, maxSize)
	}
	if maxSize > 0 && len(reply) > udpLimit(req, maxSize) {
		m := new(dns.Msg)
		if m.Unpack(reply) == nil {
			return pack(m, req, maxSize)
		}
	}
	return reply
}

// fallbackTimeout bounds one direct query to a fallback server.
const fallbackTimeout = 3 * time.Second

// fallback asks the fallback servers directly over UDP, in order.
func (d *DNS) fallback(ctx context.Context, query []byte) ([]byte, error) {
	var errs []error
	for _, server := range d.Fallback {
		reply, err := udpExchange(ctx, server, query)
		if err == nil {
			return reply, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func udpExchange(ctx context.Context, server string, query []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fallbackTimeout)
	defer cancel()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("dns: fallback %s: %w", server, err)
		}
		if n >= 2 && buf[0] == query[0] && buf[1] == query[1] {
			return buf[:n], nil
		}
	}
}

// ResolvConfServers returns the nameservers of a resolv.conf as host:port, skipping skip.
func ResolvConfServers(conf string, skip string) []string {
	var out []string
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" || f[1] == skip {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53).String())
		}
	}
	return out
}

// local answers the host names, or returns nil for a query the host should answer.
func (d *DNS) local(req *dns.Msg) *dns.Msg {
	if !d.HostAccess || len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		return nil
	}
	q := req.Question[0]
	if !IsHostName(q.Name) || q.Qclass != dns.ClassINET {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, true
	if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
		ip := netip.MustParseAddr(api.HostGatewayIP)
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: hostNameTTL},
			A:   ip.AsSlice(),
		}}
	}
	// Other types (AAAA: there is no IPv6 path to the host) are answered empty: the name
	// exists, so a resolver asking A and AAAA does not take the empty AAAA for NXDOMAIN.
	return m
}

// IsHostName reports whether name (with or without the root dot, any case) is one of
// api.HostNames.
func IsHostName(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, h := range api.HostNames {
		if name == h {
			return true
		}
	}
	return false
}

func questionName(m *dns.Msg) string {
	if len(m.Question) == 0 {
		return ""
	}
	return m.Question[0].Name
}

// udpLimit is the largest UDP reply the client takes: 512 bytes, or its EDNS0 buffer size.
func udpLimit(req *dns.Msg, maxSize int) int {
	limit := dns.MinMsgSize
	if o := req.IsEdns0(); o != nil && int(o.UDPSize()) > limit {
		limit = int(o.UDPSize())
	}
	return min(limit, maxSize)
}

func pack(m, req *dns.Msg, maxSize int) []byte {
	if maxSize > 0 {
		m.Truncate(udpLimit(req, maxSize))
	}
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	return b
}

// exchange sends query to the host on an idle stream (or a new one) and reads its reply. A
// reused stream that fails is dropped and the query sent once more on a new one.
func (d *DNS) exchange(ctx context.Context, query []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c, reused, err := d.stream(ctx)
		if err != nil {
			return nil, err
		}
		reply, err := roundTrip(ctx, c, query)
		if err == nil {
			d.putIdle(c)
			return reply, nil
		}
		c.Close()
		if !reused || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (d *DNS) stream(ctx context.Context) (c net.Conn, reused bool, err error) {
	d.mu.Lock()
	if n := len(d.idle); n > 0 {
		c = d.idle[n-1]
		d.idle = d.idle[:n-1]
	}
	d.mu.Unlock()
	if c != nil {
		return c, true, nil
	}
	c, err = d.Dial(ctx, api.ServiceHostDNS)
	return c, false, err
}

func (d *DNS) putIdle(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.idle) >= maxIdleStreams {
		c.Close()
		return
	}
	d.idle = append(d.idle, c)
}

// Close drops the idle streams.
func (d *DNS) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.idle {
		c.Close()
	}
	d.idle = nil
	return nil
}

func roundTrip(ctx context.Context, c net.Conn, query []byte) ([]byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	if err := api.WriteDatagram(c, query); err != nil {
		return nil, fmt.Errorf("dns: send to host: %w", err)
	}
	buf := make([]byte, api.MaxDatagram)
	n, err := api.ReadDatagram(c, buf)
	if err != nil {
		return nil, fmt.Errorf("dns: reply from host: %w", err)
	}
	if n < 2 || len(query) < 2 || buf[0] != query[0] || buf[1] != query[1] {
		return nil, errors.New("dns: the host's reply does not match the query")
	}
	return buf[:n], nil
}

func (d *DNS) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// ServeUDP answers queries on pc until ctx ends, each in its own goroutine.
func (d *DNS) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		buf := make([]byte, 4096)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dns: udp: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if reply := d.Answer(ctx, buf[:n], dns.MaxMsgSize); reply != nil {
				pc.WriteTo(reply, from)
			}
		}()
	}
}

// ServeTCP answers queries on the connections ln accepts (RFC 7766 framing: a 2-byte length
// before each message, as api's datagram frames) until ctx ends.
func (d *DNS) ServeTCP(ctx context.Context, ln net.Listener) error {
	return acceptloop.Run(ctx, ln, d.Log, func(c net.Conn) {
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		buf := make([]byte, api.MaxDatagram)
		for {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := api.ReadDatagram(c, buf)
			if err != nil {
				return
			}
			reply := d.Answer(ctx, buf[:n], 0)
			if reply == nil || api.WriteDatagram(c, reply) != nil {
				return
			}
		}
	})
}
