package portforward

import (
	"net"
)

// loopbackPeer reports whether a connection or datagram comes from this host.
func loopbackPeer(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UDPAddr:
		return a.IP.IsLoopback()
	}
	return false
}

// loopbackListener accepts only connections from this host; it stands in for a loopback
// bind where only the wildcard can be bound (privileged ports on macOS).
type loopbackListener struct{ net.Listener }

func (l loopbackListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || loopbackPeer(c.RemoteAddr()) {
			return c, err
		}
		c.Close()
	}
}

// loopbackPacketConn drops datagrams that do not come from this host.
type loopbackPacketConn struct{ net.PacketConn }

func (c loopbackPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil || loopbackPeer(from) {
			return n, from, err
		}
	}
}
