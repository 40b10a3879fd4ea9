package hostsvc

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// origDstMessage builds the control message the kernel attaches with IP_RECVORIGDSTADDR.
func origDstMessage(a netip.AddrPort) []byte {
	data := make([]byte, unix.SizeofSockaddrInet4)
	binary.LittleEndian.PutUint16(data[0:2], unix.AF_INET)
	binary.BigEndian.PutUint16(data[2:4], a.Port())
	ip := a.Addr().As4()
	copy(data[4:8], ip[:])
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_IP, unix.IP_ORIGDSTADDR
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestParseOrigDst(t *testing.T) {
	want := netip.MustParseAddrPort("192.168.65.254:5353")
	got, err := parseOrigDst(origDstMessage(want))
	if err != nil || got != want {
		t.Fatalf("parseOrigDst = %v, %v; want %v", got, err, want)
	}
	if _, err := parseOrigDst(nil); err == nil {
		t.Error("no control message: no error")
	}
	rights := unix.UnixRights(3)
	if _, err := parseOrigDst(rights); err == nil {
		t.Error("another control message: no error")
	}
}
