// Package netstack is the host end of the forwarding NIC (see bootparams.ForwardNICMAC): a
// user-mode TCP/IP stack (gVisor's) on a private Ethernet link into the guest, which the
// host agent dials published ports through. The driver hands over the link as a datagram
// connection, one Ethernet frame per datagram (QEMU's dgram netdev on a socket pair; on
// macOS, Virtualization.framework's file-handle attachment takes the same kind of socket).
//
// The stack only dials out: it has no listener, forwards nothing and answers nothing but ARP
// and its own connections, so a container that reaches the link's host address finds no
// service there.
package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

const nicID tcpip.NICID = 1

// Config is one end of a link: its own addresses and the peer it dials.
type Config struct {
	MAC    net.HardwareAddr
	Addr   netip.Prefix // this end's address and the link's prefix
	Peer   netip.Addr   // the address Dial reaches
	MTU    uint32
	Logger *slog.Logger
}

// HostEnd is the forwarding NIC's host end, as the boot contract gives it.
func HostEnd(log *slog.Logger) Config {
	mac, _ := net.ParseMAC(bootparams.ForwardNICHostMAC)
	return Config{
		MAC:    mac,
		Addr:   netip.PrefixFrom(netip.MustParseAddr(bootparams.ForwardNICHostIP), bootparams.ForwardNICPrefix),
		Peer:   netip.MustParseAddr(bootparams.ForwardNICGuestIP),
		MTU:    bootparams.ForwardNICMTU,
		Logger: log,
	}
}

// GuestEnd is the forwarding NIC's guest end, for a stack standing in for the guest in tests.
func GuestEnd() Config {
	h := HostEnd(nil)
	mac, _ := net.ParseMAC(bootparams.ForwardNICMAC)
	return Config{MAC: mac, Addr: netip.PrefixFrom(h.Peer, h.Addr.Bits()), Peer: h.Addr.Addr(), MTU: h.MTU}
}

// Stack is a TCP/IP stack on one link.
type Stack struct {
	cfg   Config
	s     *stack.Stack
	ep    *wire
	link  net.Conn
	done  chan struct{}
	close sync.Once
}

// New runs a stack on link, a datagram connection carrying one Ethernet frame per message,
// until Close or until the link fails.
func New(link net.Conn, cfg Config) (*Stack, error) {
	if !cfg.Addr.Addr().Is4() || !cfg.Peer.Is4() || len(cfg.MAC) != 6 || cfg.MTU < 576 {
		return nil, fmt.Errorf("netstack: want IPv4 addresses, a 6-byte MAC and an MTU of at least 576 (have %v, %v, %v, %d)", cfg.Addr, cfg.Peer, cfg.MAC, cfg.MTU)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	// Windows large enough for the link's frames: with the defaults a bulk transfer stalls
	// on a window of a few frames.
	opts := []tcpip.SettableTransportProtocolOption{
		func() *tcpip.TCPSACKEnabled { v := tcpip.TCPSACKEnabled(true); return &v }(),
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
		&tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
	}
	for _, o := range opts {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return nil, fmt.Errorf("netstack: TCP option %T: %s", o, err)
		}
	}
	st := &Stack{cfg: cfg, s: s, link: link, done: make(chan struct{})}
	ep := &wire{Endpoint: channel.New(0, cfg.MTU, tcpip.LinkAddress(cfg.MAC)), st: st}
	st.ep = ep
	if err := s.CreateNIC(nicID, ethernet.New(ep)); err != nil {
		return nil, fmt.Errorf("netstack: %s", err)
	}
	addr := tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(cfg.Addr.Addr().As4()), PrefixLen: cfg.Addr.Bits()}
	if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr}, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("netstack: address %v: %s", cfg.Addr, err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: addr.Subnet(), NIC: nicID}})
	go st.receive()
	return st, nil
}

// ErrNoPeer is returned by Dial when nothing on the link answers for the peer's address
// (its ARP requests went unanswered): the other end never configured its NIC.
var ErrNoPeer = errors.New("nothing on the link answers for the peer's address")

// unreachable is what gonet says of tcpip.ErrHostUnreachable, which it passes on as text.
var unreachable = (&tcpip.ErrHostUnreachable{}).String()

// Dial opens a TCP connection to port on the peer.
func (st *Stack) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	select {
	case <-st.done:
		return nil, net.ErrClosed
	default:
	}
	to := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(st.cfg.Peer.As4()), Port: port}
	c, err := gonet.DialContextTCP(ctx, st.s, to, ipv4.ProtocolNumber)
	if err != nil {
		if strings.Contains(err.Error(), unreachable) {
			err = fmt.Errorf("%w (%v)", ErrNoPeer, err)
		}
		return nil, fmt.Errorf("netstack: dial %v:%d: %w", st.cfg.Peer, port, err)
	}
	return c, nil
}

// Listen serves TCP port on the stack's address. The host end never listens; this is for a
// stack standing in for the guest in tests.
func (st *Stack) Listen(port uint16) (net.Listener, error) {
	l, err := gonet.ListenTCP(st.s, tcpip.FullAddress{NIC: nicID, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("netstack: listen on %d: %w", port, err)
	}
	return l, nil
}

// Done is closed once the stack has stopped (Close, or the link failed).
func (st *Stack) Done() <-chan struct{} { return st.done }

// Close stops the stack and closes the link; open connections end.
func (st *Stack) Close() error {
	st.close.Do(func() {
		close(st.done)
		st.link.Close()
		st.ep.Close()
		st.s.Close()
	})
	return nil
}

// wire is the link endpoint under the Ethernet layer: channel.Endpoint's bookkeeping, with
// each frame written to the link at once by the goroutine that sends it. Handing frames to
// a writer goroutine instead costs a wake-up per frame, which a request and its answer pay
// on every round trip.
type wire struct {
	*channel.Endpoint
	st *Stack
	mu sync.Mutex // one frame at a time on the link, in the order they were sent
}

// WritePackets implements stack.LinkEndpoint.
func (w *wire) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		v := pkt.ToView()
		w.mu.Lock()
		_, err := w.st.link.Write(v.AsSlice())
		w.mu.Unlock()
		v.Release()
		switch {
		case err == nil:
		case errors.Is(err, syscall.ENOBUFS):
			// macOS reports a full datagram buffer instead of blocking: the frame is lost, as
			// on a congested link; TCP sends it again.
		default:
			if !errors.Is(err, net.ErrClosed) {
				w.st.cfg.Logger.Warn("netstack: link write failed; the stack stops", "err", err)
			}
			go w.st.Close() // not from inside the stack's own call
			if n == 0 {
				return 0, &tcpip.ErrClosedForSend{}
			}
			return n, nil
		}
		n++
	}
	return n, nil
}

// receive hands the link's frames to the stack.
func (st *Stack) receive() {
	defer st.Close()
	buf := make([]byte, st.cfg.MTU+14+4) // the frame, its Ethernet header and room for a VLAN tag
	for {
		n, err := st.link.Read(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				st.cfg.Logger.Warn("netstack: link read failed; the stack stops", "err", err)
			}
			return
		}
		if n < 14 {
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), buf[:n]...))})
		st.ep.InjectInbound(0, pkt) // the Ethernet endpoint reads the protocol from the header
		pkt.DecRef()
	}
}
