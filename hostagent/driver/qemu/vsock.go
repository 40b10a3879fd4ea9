package qemu

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// vsockDevice is an open /dev/vhost-vsock on which a guest CID can be claimed. The claim
// lasts while the device stays open, and QEMU is handed the same open device (vhostfd), so no
// other VM can take the CID between the choice and QEMU's start.
type vsockDevice interface {
	// Claim makes cid this device's guest CID; it fails (EADDRINUSE on Linux) when another
	// VM holds it.
	Claim(cid uint32) error
	// File is the open device, for QEMU to inherit.
	File() *os.File
	io.Closer
}

// vsockTries bounds how many CIDs chooseVsock tries before it gives up on vsock.
const vsockTries = 32

// chooseVsock decides whether a machine's guest channel uses vhost-vsock instead of the
// multiplexed serial port: only under KVM (under TCG the serial channel is what is tested,
// and other accelerators have no vhost), only when the device opens, and only with a CID
// claimed on that open device. Candidates start at a CID derived from seed (the machine's
// folder: machines keep theirs across boots when it is free) and go up, skipping the
// reserved CIDs 0-2 and the top value. It returns the CID and the claimed device, or 0,
// nil and why the serial channel is used.
func chooseVsock(accel string, open func() (vsockDevice, error), seed string) (uint32, vsockDevice, string) {
	if accel != AccelKVM {
		return 0, nil, "vsock needs KVM (accelerator " + accel + ")"
	}
	dev, err := open()
	if err != nil {
		return 0, nil, fmt.Sprintf("vsock: %v", err)
	}
	var last error
	for i, cid := 0, firstCID(seed); i < vsockTries; i, cid = i+1, nextCID(cid) {
		if last = dev.Claim(cid); last == nil {
			return cid, dev, fmt.Sprintf("vsock (guest CID %d)", cid)
		}
	}
	dev.Close()
	return 0, nil, fmt.Sprintf("vsock: no free guest CID in %d tries: %v", vsockTries, last)
}

// Guest CIDs a machine may take: 0 (hypervisor), 1 (local) and 2 (host) are reserved, and
// 0xFFFFFFFF is VMADDR_CID_ANY.
const (
	minGuestCID = 3
	maxGuestCID = 0xFFFFFFFE
)

func firstCID(seed string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(seed))
	return minGuestCID + h.Sum32()%(maxGuestCID-minGuestCID+1)
}

func nextCID(cid uint32) uint32 {
	if cid >= maxGuestCID {
		return minGuestCID
	}
	return cid + 1
}

// errNoVhostVsock is what hosts without vhost-vsock (every OS but Linux) report.
var errNoVhostVsock = errors.New("/dev/vhost-vsock is Linux-only")
