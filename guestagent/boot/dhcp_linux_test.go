package boot

import (
	"net/netip"
	"testing"

	"github.com/machine-run/machine/guestagent/dhcp"
)

func TestLeaseNetBatch(t *testing.T) {
	l := dhcp.Lease{Addr: netip.MustParsePrefix("192.168.64.5/24"), Router: netip.MustParseAddr("192.168.64.1")}
	want := "link set lo up\nlink set enp0s1 up\naddr replace 192.168.64.5/24 brd + dev enp0s1\nroute replace default via 192.168.64.1 dev enp0s1\n"
	if got := LeaseNetBatch("enp0s1", l); got != want {
		t.Fatalf("batch:\n%s\nwant:\n%s", got, want)
	}
	l.Router = netip.Addr{}
	want = "link set lo up\nlink set enp0s1 up\naddr replace 192.168.64.5/24 brd + dev enp0s1\n"
	if got := LeaseNetBatch("enp0s1", l); got != want {
		t.Fatalf("batch without router:\n%s\nwant:\n%s", got, want)
	}
}
