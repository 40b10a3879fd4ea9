package netstack

import (
	"errors"
	"net"
	"os"
)

// Pair is unavailable on Windows, which has no datagram socket pairs (AF_UNIX there is
// stream-only).
func Pair() (host net.Conn, vm *os.File, err error) {
	return nil, nil, errors.New("netstack: Windows has no datagram socket pairs")
}
