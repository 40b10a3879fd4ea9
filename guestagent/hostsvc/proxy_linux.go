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
	"sync"
	"syscall"
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
	lc := net.ListenConfig{Control: transparent}
	tl, err := lc.Listen(ctx, "tcp4", proxyAddr)
	if err != nil {
		return fmt.Errorf("host services: host.docker.internal tcp: %w", err)
	}
	up, err := lc.ListenPacket(ctx, "udp4", proxyAddr)
	if err != nil {
		tl.Close()
		return fmt.Errorf("host services: host.docker.internal udp: %w", err)
	}
	go s.run("host tcp", func() error {
		return acceptloop.Run(ctx, tl, s.Log, func(c net.Conn) { s.proxyTCP(ctx, c) })
	})
	u := &udpProxy{s: s, conn: up.(*net.UDPConn), flows: map[flowKey]*udpFlow{}}
	go s.run("host udp", func() error { return u.serve(ctx) })
	return nil
}

func (s *Service) run(name string, f func() error) {
	if err := f(); err != nil {
		s.Log.Error("host services: stopped", "service", name, "err", err)
	}
}

// transparent lets a socket take connections for addresses and ports other than its own
// (TPROXY hands them over only to such sockets) and tells UDP sockets each datagram's
// original destination.
func transparent(network, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1); serr != nil {
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		if network == "udp4" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVORIGDSTADDR, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
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
	dst, _ := c.LocalAddr().(*net.TCPAddr)
	if dst == nil {
		c.Close()
		return
	}
	st, err := s.connect(ctx, "tcp", uint16(dst.Port))
	if err != nil {
		s.Log.Warn("host.docker.internal: tcp", "port", dst.Port, "err", err)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		return
	}
	streamproxy.Proxy(ctx, c, func(context.Context) (net.Conn, error) { return st, nil }, nil)
}

// parseOrigDst finds IP_ORIGDSTADDR in a datagram's control messages.
func parseOrigDst(oob []byte) (netip.AddrPort, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR && len(m.Data) >= unix.SizeofSockaddrInet4 {
			port := binary.BigEndian.Uint16(m.Data[2:4])
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(m.Data[4:8])), port), nil
		}
	}
	return netip.AddrPort{}, errors.New("no original destination in the datagram's control messages")
}

// udpIdle ends a UDP flow nobody has used for this long.
const udpIdle = 2 * time.Minute

type flowKey struct{ client, dst netip.AddrPort }

// udpProxy keeps one flow per (client, original destination): a socket bound to the
// destination and connected to the client (so replies come from the address the client
// wrote to) and one host stream.
type udpProxy struct {
	s    *Service
	conn *net.UDPConn

	mu    sync.Mutex
	flows map[flowKey]*udpFlow
}

type udpFlow struct {
	mu     sync.Mutex
	closed bool
	in     chan []byte
}

// push queues a datagram for the host; a backed-up or ended flow drops it, as a full socket
// buffer would.
func (f *udpFlow) push(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	select {
	case f.in <- p:
	default:
	}
}

func (f *udpFlow) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.in)
	}
}

func (u *udpProxy) serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { u.conn.Close() })
	defer stop()
	buf := make([]byte, api.MaxDatagram)
	oob := make([]byte, 128)
	for {
		n, oobn, _, from, err := u.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("host udp: %w", err)
		}
		dst, err := parseOrigDst(oob[:oobn])
		if err != nil {
			u.s.Log.Debug("host udp", "err", err)
			continue
		}
		key := flowKey{client: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), dst: dst}
		p := append([]byte(nil), buf[:n]...)
		u.mu.Lock()
		f := u.flows[key]
		if f == nil {
			f = &udpFlow{in: make(chan []byte, 64)}
			u.flows[key] = f
			go u.run(ctx, key, f)
		}
		f.push(p)
		u.mu.Unlock()
	}
}

// run carries one flow until it idles, either side fails, or ctx ends.
func (u *udpProxy) run(ctx context.Context, key flowKey, f *udpFlow) {
	defer func() {
		u.mu.Lock()
		delete(u.flows, key)
		f.close()
		u.mu.Unlock()
	}()
	d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(key.dst), Control: transparent}
	reply, err := d.DialContext(ctx, "udp4", key.client.String())
	if err != nil {
		u.s.Log.Debug("host udp: reply socket", "flow", key, "err", err)
		return
	}
	defer reply.Close()
	st, err := u.s.connect(ctx, "udp", key.dst.Port())
	if err != nil {
		u.s.Log.Warn("host.docker.internal: udp", "port", key.dst.Port(), "err", err)
		return
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Close(); reply.Close() })
	defer stop()
	// Later datagrams of the flow may reach the connected socket instead of the listener.
	go func() {
		buf := make([]byte, api.MaxDatagram)
		for {
			n, err := reply.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue
				}
				st.Close()
				return
			}
			f.push(append([]byte(nil), buf[:n]...))
		}
	}()
	go func() {
		for p := range f.in {
			if api.WriteDatagram(st, p) != nil {
				return
			}
		}
	}()
	buf := make([]byte, api.MaxDatagram)
	for {
		st.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := api.ReadDatagram(st, buf)
		if err != nil {
			return
		}
		if _, err := reply.Write(buf[:n]); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
	}
}
