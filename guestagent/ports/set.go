package ports

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/machine-run/machine/guestagent/api"
)

// Collect turns a container listing into the published set: only entries with a public
// port, a tcp or udp protocol, a port in 1..65535, a parsable address and a container ID;
// no duplicates; sorted so that equal sets compare equal. An empty address means the IPv4
// wildcard, as Docker means it. IPv4 and IPv6 entries of one publish are both kept: the
// host binds them separately.
func Collect(cs []Container) []api.Port {
	set := []api.Port{}
	for _, c := range cs {
		if c.ID == "" {
			continue
		}
		for _, p := range c.Ports {
			if port, ok := convert(c.ID, p); ok {
				set = append(set, port)
			}
		}
	}
	slices.SortFunc(set, compare)
	return slices.CompactFunc(set, func(a, b api.Port) bool { return compare(a, b) == 0 })
}

func convert(id string, p ContainerPort) (api.Port, bool) {
	if p.PublicPort < 1 || p.PublicPort > 65535 || (p.Type != "tcp" && p.Type != "udp") {
		return api.Port{}, false
	}
	ip := p.IP
	if ip == "" {
		ip = "0.0.0.0"
	} else if _, err := netip.ParseAddr(ip); err != nil {
		return api.Port{}, false
	}
	return api.Port{Proto: p.Type, HostIP: ip, HostPort: uint16(p.PublicPort), Container: id}, true
}

func compare(a, b api.Port) int {
	return cmp.Or(
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.HostPort, b.HostPort),
		cmp.Compare(a.HostIP, b.HostIP),
		cmp.Compare(a.Container, b.Container),
	)
}

// Equal tells whether two sets from Collect hold the same ports.
func Equal(a, b []api.Port) bool { return slices.Equal(a, b) }
