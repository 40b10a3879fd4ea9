package portforward

import "net/netip"

// network names the single-family network for addr ("tcp4", "udp6", ...), so an IPv6 bind
// never takes the IPv4 port too.
func network(proto string, addr netip.AddrPort) string {
	if addr.Addr().Is4() {
		return proto + "4"
	}
	return proto + "6"
}
