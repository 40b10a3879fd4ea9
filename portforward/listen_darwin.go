//go:build darwin

package portforward

import (
	"context"
	"net"
	"net/netip"
	"os"
)

// On macOS an unprivileged process may bind a port below 1024 on the wildcard address but not
// on a specific one, loopback included. There a loopback forward of such a port binds the
// wildcard and refuses peers that are not on this host.

// listenTCP binds a TCP listener on addr, never dual-stack.
func listenTCP(ctx context.Context, addr netip.AddrPort) (net.Listener, error) {
	if !needsWildcard(addr) {
		return new(net.ListenConfig).Listen(ctx, network("tcp", addr), addr.String())
	}
	ln, err := new(net.ListenConfig).Listen(ctx, network("tcp", addr), wildcard(addr).String())
	if err != nil {
		return nil, err
	}
	return loopbackListener{ln}, nil
}

// listenUDP binds a UDP socket on addr, never dual-stack.
func listenUDP(ctx context.Context, addr netip.AddrPort) (net.PacketConn, error) {
	if !needsWildcard(addr) {
		return new(net.ListenConfig).ListenPacket(ctx, network("udp", addr), addr.String())
	}
	pc, err := new(net.ListenConfig).ListenPacket(ctx, network("udp", addr), wildcard(addr).String())
	if err != nil {
		return nil, err
	}
	return loopbackPacketConn{pc}, nil
}

func needsWildcard(addr netip.AddrPort) bool {
	return addr.Addr().IsLoopback() && addr.Port() < 1024 && os.Geteuid() != 0
}

func wildcard(addr netip.AddrPort) netip.AddrPort {
	if addr.Addr().Is4() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port())
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), addr.Port())
}
