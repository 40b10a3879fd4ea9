package portforward

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/machine-run/machine/guestagent/api"
)

// Protocols a published port may use.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// validate rejects port events the host must not act on; the reason is shown in Status.
func validate(p api.Port) error {
	if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
		return fmt.Errorf("invalid protocol %q: want tcp or udp", p.Proto)
	}
	if p.HostPort == 0 {
		return errors.New("invalid port 0: want 1-65535")
	}
	if p.Container == "" {
		return errors.New("no container ID")
	}
	if _, err := parseIP(p.HostIP); err != nil {
		return err
	}
	return nil
}

// parseIP parses a published address; empty means the IPv4 wildcard, as Docker reports it.
func parseIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.IPv4Unspecified(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid host IP %q", s)
	}
	return a.Unmap(), nil
}

// bindAddr is the host address that exposes a port the guest publishes on hostIP. A wildcard
// publish binds the host's loopback of the same family, or the wildcard when all is set
// (PublishAllInterfaces); an explicit loopback address is honoured; any other explicit
// address means something only inside the guest, so it maps to loopback too.
func bindAddr(hostIP string, port uint16, all bool) (netip.AddrPort, error) {
	a, err := parseIP(hostIP)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch {
	case a.IsUnspecified() && all:
	case a.IsLoopback():
	case a.Is4():
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		a = netip.IPv6Loopback()
	}
	return netip.AddrPortFrom(a, port), nil
}

// GuestTarget is the request that reaches a port the guest publishes on hostIP: wildcard and
// loopback publishes are reachable on the guest's loopback (docker-proxy listens there), an
// explicit address only on that address.
func GuestTarget(p api.Port) api.ForwardRequest {
	req := api.ForwardRequest{Proto: p.Proto, Port: p.HostPort}
	a, err := parseIP(p.HostIP)
	switch {
	case err != nil:
	case a.IsUnspecified() && a.Is4():
		// Empty asks the guest to dial its own address: the engine's NAT rules then deliver
		// straight to the container, skipping a userland proxy hop (docker-proxy), which
		// costs milliseconds per round trip under emulation.
		req.IP = ""
	case a.IsLoopback() && a.Is4():
		req.IP = "127.0.0.1"
	case a.IsUnspecified(), a.IsLoopback():
		req.IP = "::1"
	default:
		req.IP = a.String()
	}
	return req
}
