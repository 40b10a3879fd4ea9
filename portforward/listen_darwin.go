//go:build darwin

package portforward

import (
	"context"
	"net"
	"net/netip"
	"os"
)

// On macOS a loopback forward of a privileged port binds the wildcard and refuses peers
// that are not on this host (darwinBind).

// listenTCP binds a TCP listener on addr, never dual-stack.
func listenTCP(ctx context.Context, addr netip.AddrPort) (net.Listener, error) {
	bind, loopbackOnly := darwinBind(addr, os.Geteuid())
	ln, err := new(net.ListenConfig).Listen(ctx, network("tcp", bind), bind.String())
	if err != nil || !loopbackOnly {
		return ln, err
	}
	return loopbackListener{ln}, nil
}

// listenUDP binds a UDP socket on addr, never dual-stack.
func listenUDP(ctx context.Context, addr netip.AddrPort) (net.PacketConn, error) {
	bind, loopbackOnly := darwinBind(addr, os.Geteuid())
	pc, err := new(net.ListenConfig).ListenPacket(ctx, network("udp", bind), bind.String())
	if err != nil || !loopbackOnly {
		return pc, err
	}
	return loopbackPacketConn{pc}, nil
}
