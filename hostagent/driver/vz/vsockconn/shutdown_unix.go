//go:build unix

package vsockconn

import "syscall"

func shutdownWrite(fd uintptr) error {
	return syscall.Shutdown(int(fd), syscall.SHUT_WR)
}
