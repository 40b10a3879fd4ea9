package vz

import (
	"strings"

	"github.com/machine-run/machine/guestagent/api"
)

// kernelCmdline adds what this driver decides to the host agent's command line: the virtio
// console, the vsock channel and DHCP (vz NAT serves DHCP; QEMU user networking does not).
func kernelCmdline(base string) string {
	parts := append(strings.Fields(base),
		"console=hvc0",
		api.CmdlineChannel+"="+api.ChannelVsock,
		api.CmdlineNet+"=dhcp",
	)
	return strings.Join(parts, " ")
}
