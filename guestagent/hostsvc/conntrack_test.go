package hostsvc

import (
	"net/netip"
	"strings"
	"testing"
)

func TestUDPOrigPort(t *testing.T) {
	table := strings.Join([]string{
		"ipv4     2 tcp      6 431999 ESTABLISHED src=172.17.0.2 dst=192.168.65.254 sport=40000 dport=8000 src=192.168.65.254 dst=172.17.0.2 sport=2410 dport=40000 [ASSURED] mark=0 zone=0 use=2",
		"ipv4     2 udp      17 29 src=172.18.0.3 dst=192.168.65.254 sport=40000 dport=5300 [UNREPLIED] src=192.168.65.254 dst=172.18.0.3 sport=2410 dport=40000 mark=0 zone=0 use=2",
		"ipv4     2 udp      17 29 src=172.17.0.2 dst=10.0.2.3 sport=40000 dport=53 src=10.0.2.3 dst=10.0.2.15 sport=53 dport=40000 mark=0 zone=0 use=2",
		"ipv4     2 udp      17 29 src=172.17.0.2 dst=192.168.65.254 sport=40000 dport=9999 [UNREPLIED] src=192.168.65.254 dst=172.17.0.2 sport=2410 dport=40000 mark=0 zone=0 use=2",
	}, "\n") + "\n"
	gw := netip.MustParseAddr("192.168.65.254")
	for _, tt := range []struct {
		src  string
		want uint16
		ok   bool
	}{
		{"172.17.0.2:40000", 9999, true}, // not the TCP flow, not the one to the NAT's DNS
		{"172.18.0.3:40000", 5300, true},
		{"172.17.0.2:40001", 0, false},
		{"172.17.0.9:40000", 0, false},
	} {
		got, err := udpOrigPort(strings.NewReader(table), netip.MustParseAddrPort(tt.src), gw, 2410)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("udpOrigPort(%s) = %d, %v; want %d (found: %v)", tt.src, got, err, tt.want, tt.ok)
		}
	}
}
