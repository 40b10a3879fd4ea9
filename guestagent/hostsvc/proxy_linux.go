package hostsvc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/reaper"
	"github.com/machine-run/machine/internal/acceptloop"
	"github.com/machine-run/machine/internal/streamproxy"
)

// Service runs the guest's host services.
type Service struct {
	Dial       DialHost
	HostAccess bool
	Reaper     *reaper.Reaper
	Log        *slog.Logger
	// WriteResolvConf points the guest's resolv.conf at a nameserver.
	WriteResolvConf func(server string) error

	dns *DNS
}

// connectTimeout bounds opening a host connection (the host's own dial is bounded too).
const connectTimeout = 15 * time.Second

// Start puts the service addresses on the loopback device, installs the proxy rules (with
// host access), starts the proxy and the DNS forwarder, and points resolv.conf at it. It
// returns once everything listens; the services run until ctx ends.
func (s *Service) Start(ctx context.Context) error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	batch := filepath.Join(os.TempDir(), "machine-hostsvc.ip")
	if err := os.WriteFile(batch, []byte(Addresses(s.HostAccess)), 0o600); err != nil {
		return fmt.Errorf("host services: %w", err)
	}
	defer os.Remove(batch)
	if _, err := s.Reaper.Output(ctx, exec.Command("ip", "-batch", batch)); err != nil {
		return fmt.Errorf("host services: addresses: %w", err)
	}
	s.dns = &DNS{Dial: s.Dial, HostAccess: s.HostAccess, Log: s.Log}
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		s.dns.Fallback = ResolvConfServers(string(b), api.DNSServerIP)
	}
	dnsAddr := net.JoinHostPort(api.DNSServerIP, "53")
	pc, err := net.ListenPacket("udp4", dnsAddr)
	if err != nil {
		return fmt.Errorf("host services: dns: %w", err)
	}
	ln, err := net.Listen("tcp4", dnsAddr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("host services: dns: %w", err)
	}
	go s.run("dns udp", func() error { return s.dns.ServeUDP(ctx, pc) })
	go s.run("dns tcp", func() error { return s.dns.ServeTCP(ctx, ln) })
	if s.WriteResolvConf != nil {
		if err := s.WriteResolvConf(api.DNSServerIP); err != nil {
			return fmt.Errorf("host services: %w", err)
		}
	}
	if !s.HostAccess {
		return nil
	}
	for _, args := range GatewayRules() {
		if _, err := s.Reaper.Output(ctx, exec.Command("iptables", args...)); err != nil {
			return fmt.Errorf("host services: host.docker.internal rules: %w", err)
		}
	}
	proxyAddr := net.JoinHostPort(api.HostGatewayIP, strconv.Itoa(ProxyPort))
	tl, err := net.Listen("tcp4", proxyAddr)
	if err != nil {
		return fmt.Errorf("host services: host.docker.internal tcp: %w", err)
	}
	go s.run("host tcp", func() error {
		return acceptloop.Run(ctx, tl, s.Log, func(c net.Conn) { s.proxyTCP(ctx, c) })
	})
	ul, err := net.ListenPacket("udp4", proxyAddr)
	if err != nil {
		return fmt.Errorf("host services: host.docker.internal udp: %w", err)
	}
	go s.run("host udp", func() error { return s.newUDPProxy(ul).serve(ctx) })
	return nil
}

func (s *Service) run(name string, f func() error) {
	if err := f(); err != nil {
		s.Log.Error("host services: stopped", "service", name, "err", err)
	}
}

// connect opens a host connection to the host's loopback port for proto.
func (s *Service) connect(ctx context.Context, proto string, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	st, err := s.Dial(ctx, api.ServiceHostConnect)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := api.WriteHostConnect(st, api.HostConnectRequest{Proto: proto, Port: port}); err != nil {
		st.Close()
		return nil, err
	}
	var status [1]byte
	if _, err := st.Read(status[:]); err != nil {
		st.Close()
		return nil, fmt.Errorf("host connect %s/%d: %w", proto, port, err)
	}
	if !stop() {
		st.Close()
		return nil, ctx.Err()
	}
	switch status[0] {
	case api.HostConnectOK:
		return st, nil
	case api.HostConnectDisabled:
		st.Close()
		return nil, fmt.Errorf("host connect %s/%d: host access is off for this machine", proto, port)
	}
	st.Close()
	return nil, fmt.Errorf("host connect %s/%d: refused by the host", proto, port)
}

// proxyTCP carries one container connection to the host. The kernel has already completed
// the handshake, so a port the host refuses is answered with a reset, as a refusal is.
func (s *Service) proxyTCP(ctx context.Context, c net.Conn) {
	dst, err := originalDst(c)
	if err != nil || dst.Addr() != netip.MustParseAddr(api.HostGatewayIP) {
		s.Log.Warn("host.docker.internal: tcp: no original destination", "peer", c.RemoteAddr(), "dst", dst, "err", err)
		c.Close()
		return
	}
	st, err := s.connect(ctx, "tcp", dst.Port())
	if err != nil {
		s.Log.Warn("host.docker.internal: tcp", "port", dst.Port(), "err", err)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		return
	}
	streamproxy.Proxy(ctx, c, func(context.Context) (net.Conn, error) { return st, nil }, nil)
}

// originalDst is where a connection the DNAT rule redirected was going (SO_ORIGINAL_DST).
func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var raw *unix.IPv6Mreq // 16 bytes: a struct sockaddr_in fits
	var serr error
	if err := rc.Control(func(fd uintptr) {
		raw, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", serr)
	}
	return parseSockaddrIn(raw.Multiaddr)
}

// parseSockaddrIn reads a struct sockaddr_in as the kernel writes it: family (host order),
// port and address (network order).
func parseSockaddrIn(b [16]byte) (netip.AddrPort, error) {
	if fam := binary.NativeEndian.Uint16(b[0:2]); fam != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("original destination of family %d, want AF_INET", fam)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4])), nil
}
