package vz

import (
	"crypto/sha256"
	"net"
)

// macForName derives a stable MAC address from the machine's name, so the guest keeps its
// DHCP lease (and address) across restarts. The address is unicast and locally administered.
func macForName(name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("machine-vz-mac:" + name))
	mac := net.HardwareAddr(sum[:6:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}
