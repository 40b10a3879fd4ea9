package hostsvc

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSockaddrIn(t *testing.T) {
	var b [16]byte
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:4], 8000)
	copy(b[4:8], []byte{192, 168, 65, 254})
	got, err := parseSockaddrIn(b)
	if want := netip.MustParseAddrPort("192.168.65.254:8000"); err != nil || got != want {
		t.Fatalf("parseSockaddrIn = %v, %v; want %v", got, err, want)
	}
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	if _, err := parseSockaddrIn(b); err == nil {
		t.Error("an AF_INET6 sockaddr: no error")
	}
}
