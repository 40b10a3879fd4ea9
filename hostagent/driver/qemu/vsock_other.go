//go:build !linux

package qemu

import (
	"context"
	"fmt"
	"net"

	"github.com/machine-run/machine/hostagent/driver"
)

// dialVsock: QEMU offers vhost-vsock only on Linux hosts.
func dialVsock(context.Context, uint32, uint32, <-chan struct{}) (net.Conn, error) {
	return nil, fmt.Errorf("qemu: vsock: %w on this host", driver.ErrUnsupported)
}

func openVhostVsock() (vsockDevice, error) { return nil, errNoVhostVsock }
