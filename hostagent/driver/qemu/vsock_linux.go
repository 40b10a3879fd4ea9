package qemu

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vhostVsockSetGuestCID is VHOST_VSOCK_SET_GUEST_CID: _IOW(VHOST_VIRTIO (0xAF), 0x60, __u64).
const vhostVsockSetGuestCID = 0x4008AF60

type vhostVsock struct{ f *os.File }

// openVhostVsock opens the host's vhost-vsock device for a CID claim.
func openVhostVsock() (vsockDevice, error) {
	f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return vhostVsock{f}, nil
}

func (v vhostVsock) Claim(cid uint32) error {
	c := uint64(cid)
	sc, err := v.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, vhostVsockSetGuestCID, uintptr(unsafe.Pointer(&c)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("claim guest CID %d: %w", cid, errno)
	}
	return nil
}

func (v vhostVsock) Close() error { return v.f.Close() }

func (v vhostVsock) File() *os.File { return v.f }
