package portforward

import (
	"net/netip"
	"testing"
)

func TestDarwinBind(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		euid     int
		bind     string
		loopOnly bool
	}{
		{"127.0.0.1:80", 501, "0.0.0.0:80", true},
		{"127.0.0.1:1023", 501, "0.0.0.0:1023", true},
		{"[::1]:443", 501, "[::]:443", true},
		{"127.0.0.1:1024", 501, "127.0.0.1:1024", false},
		{"127.0.0.1:8080", 501, "127.0.0.1:8080", false},
		{"127.0.0.1:80", 0, "127.0.0.1:80", false},         // root binds loopback itself
		{"0.0.0.0:80", 501, "0.0.0.0:80", false},           // --publish-all-interfaces: already every interface
		{"192.168.1.20:80", 501, "192.168.1.20:80", false}, // an explicit host address is bound as asked
		{"[::]:22", 501, "[::]:22", false},
	} {
		bind, loopOnly := darwinBind(netip.MustParseAddrPort(tc.addr), tc.euid)
		if bind.String() != tc.bind || loopOnly != tc.loopOnly {
			t.Errorf("darwinBind(%s, euid %d) = %s, loopback-only %v; want %s, %v", tc.addr, tc.euid, bind, loopOnly, tc.bind, tc.loopOnly)
		}
	}
}
