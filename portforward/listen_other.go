//go:build !darwin

package portforward

import (
	"context"
	"net"
	"net/netip"
)

// listenTCP binds a TCP listener on addr, never dual-stack: the IPv4 and IPv6 forwards of one
// port are separate listeners.
func listenTCP(ctx context.Context, addr netip.AddrPort) (net.Listener, error) {
	return new(net.ListenConfig).Listen(ctx, network("tcp", addr), addr.String())
}

// listenUDP binds a UDP socket on addr, never dual-stack.
func listenUDP(ctx context.Context, addr netip.AddrPort) (net.PacketConn, error) {
	return new(net.ListenConfig).ListenPacket(ctx, network("udp", addr), addr.String())
}
