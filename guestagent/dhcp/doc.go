// Package dhcp keeps a DHCPv4 lease on the guest's NIC for machine.net=dhcp (the NAT
// network of Apple's Virtualization.framework, whose DHCP server is the host's bootpd).
//
// The DISCOVER/OFFER/REQUEST/ACK exchange and the raw packet socket come from
// github.com/insomniacslk/dhcp's nclient4; this package adds what a guest agent needs
// around it: a bounded first acquisition with backoff, a restart on NAK, renewal at T1 and
// re-acquisition when a lease runs out, and a callback that configures the interface.
//
// Lease (parsing an ACK, lease timers) is portable. Client is Linux-only: nclient4's raw
// socket is.
package dhcp
