package hostsvc

import (
	"strconv"

	"github.com/machine-run/machine/guestagent/api"
)

// ProxyPort is where the proxy listens on api.HostGatewayIP; the netfilter rules hand it
// every TCP connection to that address, whatever its port.
const ProxyPort = 2410

// chain is the nat-table chain that holds the proxy's rules, so they are found and replaced
// as a unit and never mixed with the engine's.
const chain = "MACHINE-HOST-GATEWAY"

// Addresses returns the `ip -batch` script that puts the service addresses on the guest's
// loopback device: local addresses, so the guest's routing delivers every container's
// packets for them to the guest itself.
func Addresses(hostAccess bool) string {
	s := "addr add " + api.DNSServerIP + "/32 dev lo\n"
	if hostAccess {
		s += "addr add " + api.HostGatewayIP + "/32 dev lo\n"
	}
	return s
}

// GatewayRules are the iptables commands (argv without "iptables") that send every TCP
// connection and UDP flow for api.HostGatewayIP to the proxy; the proxy reads the port the
// container asked for from the connection's original destination (SO_ORIGINAL_DST) or, for
// UDP, from the flow's conntrack entry (see conntrack.go).
//
// A DNAT, not TPROXY: containers' packets cross the engine's bridges, where br_netfilter
// runs PREROUTING before the IP layer, and the IP layer then drops the socket TPROXY
// assigned (the kernel answered every SYN with a reset). A DNAT is kept, as the engine's
// own port publishing shows; conntrack also turns the proxy's replies back into the address and
// port the container sent to. Each waits for the legacy tables' lock (-w), as the host-alias
// rules do, rather than fail while another iptables holds it.
func GatewayRules() [][]string {
	return [][]string{
		{"-w", "-t", "nat", "-N", chain},
		{"-w", "-t", "nat", "-A", chain, "-p", "tcp", "-j", "DNAT", "--to-destination", api.HostGatewayIP + ":" + strconv.Itoa(ProxyPort)},
		{"-w", "-t", "nat", "-A", chain, "-p", "udp", "-j", "DNAT", "--to-destination", api.HostGatewayIP + ":" + strconv.Itoa(ProxyPort)},
		{"-w", "-t", "nat", "-I", "PREROUTING", "1", "-d", api.HostGatewayIP + "/32", "-j", chain},
		// The guest's own processes and --network host containers: their packets to a local
		// address never pass PREROUTING.
		{"-w", "-t", "nat", "-I", "OUTPUT", "1", "-d", api.HostGatewayIP + "/32", "-j", chain},
	}
}
