// Package hostsvc is the guest end of the host services: it gives containers
// host.docker.internal (every TCP and UDP connection to api.HostGatewayIP is taken by a
// transparent proxy and carried to the host's loopback over an api.ServiceHostConnect
// stream) and a DNS forwarder on api.DNSServerIP that answers the host names itself and asks
// the host's resolver for everything else over api.ServiceHostDNS.
//
// The forwarder and the rule builder are portable and table-tested; only the socket options
// and the netfilter set-up are Linux files.
package hostsvc
