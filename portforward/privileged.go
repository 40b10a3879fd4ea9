package portforward

import "net/netip"

// macOS lets an unprivileged process bind a port below 1024 on the wildcard address but on
// no specific address, loopback included. darwinBind decides, for a forward that must be
// reachable only from this host, what macOS binds and whether the listener must then refuse
// peers that are not on this host: only a loopback address with a privileged port, for a
// user other than root, widens to the wildcard, and only with the loopback filter
// (loopbackListener, loopbackPacketConn). A forward published on every interface
// (--publish-all-interfaces) already binds the wildcard and is left alone. Portable, so
// that it is tested on every OS; listen_darwin.go applies it.
func darwinBind(addr netip.AddrPort, euid int) (bind netip.AddrPort, loopbackOnly bool) {
	if !addr.Addr().IsLoopback() || addr.Port() >= 1024 || euid == 0 {
		return addr, false
	}
	if addr.Addr().Is4() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port()), true
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), addr.Port()), true
}
