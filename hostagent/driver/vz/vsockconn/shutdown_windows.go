package vsockconn

import "syscall"

func shutdownWrite(fd uintptr) error {
	return syscall.Shutdown(syscall.Handle(fd), syscall.SHUT_WR)
}
