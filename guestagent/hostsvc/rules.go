package hostsvc

import (
	"strconv"

	"github.com/machine-run/machine/guestagent/api"
)

// ProxyPort is where the transparent proxy listens on api.HostGatewayIP (TCP and UDP); the
// netfilter rules hand it every connection to that address, whatever its port.
const ProxyPort = 2410

// chain is the mangle-table chain that holds the proxy's rules, so they are found and
// replaced as a unit and never mixed with the engine's.
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

// GatewayRules are the iptables commands (argv without "iptables") that send every TCP and
// UDP packet for api.HostGatewayIP to the transparent proxy. TPROXY keeps the packet's
// destination, so the proxy's sockets see the port the container asked for.
func GatewayRules() [][]string {
	port := strconv.Itoa(ProxyPort)
	rule := func(proto string) []string {
		return []string{"-t", "mangle", "-A", chain, "-p", proto, "-j", "TPROXY", "--on-ip", api.HostGatewayIP, "--on-port", port}
	}
	return [][]string{
		{"-t", "mangle", "-N", chain},
		rule("tcp"),
		rule("udp"),
		{"-t", "mangle", "-I", "PREROUTING", "1", "-d", api.HostGatewayIP + "/32", "-j", chain},
	}
}
