package hostsvc

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// udpQueue bounds the datagrams waiting for a flow's host stream; more are dropped, as a
// congested network would.
const udpQueue = 64

// udpProxy carries containers' UDP flows to api.HostGatewayIP to the host's loopback: one
// host stream per flow (per source address and port), datagrams framed on it. Replies leave
// the proxy's socket, and conntrack gives them the address and port the container sent to.
type udpProxy struct {
	svc *Service
	pc  net.PacketConn
	// origPort finds the port a redirected datagram from src was sent to.
	origPort func(src netip.AddrPort) (uint16, error)

	mu    sync.Mutex
	flows map[netip.AddrPort]chan []byte
}

func (s *Service) newUDPProxy(pc net.PacketConn) *udpProxy {
	gw := netip.MustParseAddr(api.HostGatewayIP)
	return &udpProxy{svc: s, pc: pc, flows: map[netip.AddrPort]chan []byte{},
		origPort: func(src netip.AddrPort) (uint16, error) {
			f, err := os.Open(conntrackTable)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			return udpOrigPort(f, src, gw, ProxyPort)
		}}
}

// serve reads datagrams until ctx ends or the socket fails.
func (u *udpProxy) serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { u.pc.Close() })
	defer stop()
	buf := make([]byte, api.MaxDatagram)
	for {
		n, from, err := u.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		d := append([]byte(nil), buf[:n]...)
		u.mu.Lock()
		q, ok := u.flows[src]
		if !ok {
			q = make(chan []byte, udpQueue)
			u.flows[src] = q
			go u.flow(ctx, src, q)
		}
		u.mu.Unlock()
		select {
		case q <- d:
		default: // the flow is behind: drop, as a full queue on a real link would
		}
	}
}

// flow opens the host stream for the datagrams from src and relays both ways until the flow
// idles, the stream ends or ctx ends.
func (u *udpProxy) flow(ctx context.Context, src netip.AddrPort, q chan []byte) {
	defer func() {
		u.mu.Lock()
		delete(u.flows, src)
		u.mu.Unlock()
	}()
	port, err := u.origPort(src)
	if err != nil {
		u.svc.Log.Warn("host.docker.internal: udp: no original destination", "src", src, "err", err)
		return
	}
	st, err := u.svc.connect(ctx, "udp", port)
	if err != nil {
		u.svc.Log.Warn("host.docker.internal: udp", "port", port, "err", err)
		return
	}
	defer st.Close()
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		buf := make([]byte, api.MaxDatagram)
		to := net.UDPAddrFromAddrPort(src)
		for {
			n, err := api.ReadDatagram(st, buf)
			if err != nil {
				return
			}
			last.Store(time.Now().UnixNano())
			u.pc.WriteTo(buf[:n], to)
		}
	}()
	tick := time.NewTicker(api.HostUDPIdle / 8)
	defer tick.Stop()
	for {
		select {
		case d := <-q:
			if api.WriteDatagram(st, d) != nil {
				return
			}
			last.Store(time.Now().UnixNano())
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) > api.HostUDPIdle {
				return
			}
		case <-ended:
			return
		case <-ctx.Done():
			return
		}
	}
}
