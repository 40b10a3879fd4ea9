//go:build !windows

package netstack

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// Each end's socket buffers: the send buffer holds about 16 full frames, and the receive
// buffer, four times that, a burst the other end has not read yet. Apple's framework expects
// the receive buffer of a file-handle attachment's socket to be at least twice its send
// buffer and recommends four times.
const (
	linkSendBuffer    = 1 << 20
	linkReceiveBuffer = 4 * linkSendBuffer
)

// Pair returns the two ends of a new link: a datagram socket pair, the host agent's end as a
// connection for New and the VM's end as a file to hand to the hypervisor.
func Pair() (host net.Conn, vm *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("netstack: socket pair: %w", err)
	}
	for _, fd := range fds {
		// Best effort: a host that caps buffers lower still works, with more drops under load.
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, linkSendBuffer)
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, linkReceiveBuffer)
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	hf := os.NewFile(uintptr(fds[0]), "netstack-host")
	defer hf.Close() // FileConn holds its own descriptor
	host, err = net.FileConn(hf)
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("netstack: socket pair: %w", err)
	}
	return host, os.NewFile(uintptr(fds[1]), "netstack-vm"), nil
}
