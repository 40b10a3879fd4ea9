package hostsvc

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/machine-run/machine/guestagent/api"
)

// Resolver is what DNS answers need from the host's resolver; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupCNAME(ctx context.Context, host string) (string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupNS(ctx context.Context, name string) ([]*net.NS, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// answerTTL is short: the host's network (a VPN, a new Wi-Fi) can change under the guest,
// and the OS resolver caches on its own.
const answerTTL = 10

// lookupTimeout bounds one question; the guest's resolver retries on its own.
const lookupTimeout = 8 * time.Second

// serveDNS answers each query framed on c until the guest closes the stream.
func (s *Server) serveDNS(ctx context.Context, c net.Conn) {
	defer c.Close()
	buf := make([]byte, api.MaxDatagram)
	for {
		n, err := api.ReadDatagram(c, buf)
		if err != nil {
			return
		}
		reply := Answer(ctx, s.Resolver, buf[:n])
		if reply == nil {
			continue
		}
		if api.WriteDatagram(c, reply) != nil {
			return
		}
	}
}

// Answer resolves one DNS query message with r and returns the packed reply, or nil when
// the query is too broken to answer (no header).
func Answer(ctx context.Context, r Resolver, query []byte) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		if len(query) < 12 {
			return nil
		}
		// The header alone names the ID the client waits for.
		req = &dns.Msg{}
		req.Id = uint16(query[0])<<8 | uint16(query[1])
		return pack(reply(req, dns.RcodeFormatError))
	}
	if req.Response || req.Opcode != dns.OpcodeQuery {
		return pack(reply(req, dns.RcodeNotImplemented))
	}
	if len(req.Question) != 1 {
		return pack(reply(req, dns.RcodeFormatError))
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET {
		return pack(reply(req, dns.RcodeNotImplemented))
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	rrs, err := lookup(ctx, r, q)
	m := reply(req, rcodeOf(err))
	if err == nil {
		m.Answer = rrs
	}
	return pack(m)
}

// errNotImplemented marks a question type the host's resolver API cannot ask.
var errNotImplemented = errors.New("query type not implemented")

func rcodeOf(err error) int {
	var de *net.DNSError
	switch {
	case err == nil:
		return dns.RcodeSuccess
	case errors.Is(err, errNotImplemented):
		return dns.RcodeNotImplemented
	case errors.As(err, &de) && de.IsNotFound:
		return dns.RcodeNameError
	}
	return dns.RcodeServerFailure
}

func reply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	m.Authoritative = false
	return m
}

func pack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		m.Answer = nil
		m.Rcode = dns.RcodeServerFailure
		b, _ = m.Pack()
	}
	return b
}

// lookup asks the host's resolver one question. Names are passed without the root dot: Go's
// resolver matches /etc/hosts entries only so.
func lookup(ctx context.Context, r Resolver, q dns.Question) ([]dns.RR, error) {
	name := strings.TrimSuffix(q.Name, ".")
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: answerTTL}
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		addrs, err := r.LookupNetIP(ctx, "ip", name)
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for _, a := range addrs {
			a = a.Unmap()
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				rrs = append(rrs, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				rrs = append(rrs, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
		return rrs, nil // the name exists; none of this family is NOERROR without answers
	case dns.TypeCNAME:
		cname, err := r.LookupCNAME(ctx, name)
		if err != nil {
			return nil, err
		}
		if cname = dns.Fqdn(cname); strings.EqualFold(cname, q.Name) {
			return nil, nil
		}
		return []dns.RR{&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: cname}}, nil
	case dns.TypeMX:
		mxs, err := r.LookupMX(ctx, name)
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for _, mx := range mxs {
			rrs = append(rrs, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
		}
		return rrs, nil
	case dns.TypeTXT:
		txts, err := r.LookupTXT(ctx, name)
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for _, t := range txts {
			rrs = append(rrs, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: splitTXT(t)})
		}
		return rrs, nil
	case dns.TypeNS:
		nss, err := r.LookupNS(ctx, name)
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for _, ns := range nss {
			rrs = append(rrs, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: dns.Fqdn(ns.Host)})
		}
		return rrs, nil
	case dns.TypeSRV:
		_, srvs, err := r.LookupSRV(ctx, "", "", name)
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for _, s := range srvs {
			rrs = append(rrs, &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: dns.Fqdn(s.Target)})
		}
		return rrs, nil
	case dns.TypePTR:
		ip, ok := reverseIP(q.Name)
		if !ok {
			return nil, &net.DNSError{Err: "not a reverse name", Name: q.Name, IsNotFound: true}
		}
		names, err := r.LookupAddr(ctx, ip.String())
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for _, n := range names {
			rrs = append(rrs, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: dns.Fqdn(n)})
		}
		return rrs, nil
	}
	return nil, errNotImplemented
}

// splitTXT cuts a TXT value into the 255-byte strings a record holds.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// reverseIP turns "4.3.2.1.in-addr.arpa." into 1.2.3.4 (and the ip6.arpa nibble form).
func reverseIP(name string) (netip.Addr, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(v4, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		for i, j := 0, 3; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
		a, err := netip.ParseAddr(strings.Join(parts, "."))
		return a, err == nil && a.Is4()
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(v6, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i // the first nibble is the lowest
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
