package hostsvc

import (
	"reflect"
	"strings"
	"testing"
)

func TestAddresses(t *testing.T) {
	if got, want := Addresses(true), "addr add 192.168.65.7/32 dev lo\naddr add 192.168.65.254/32 dev lo\n"; got != want {
		t.Errorf("Addresses(true) = %q, want %q", got, want)
	}
	// Without host access the gateway address does not exist: connections to it find nothing.
	if got := Addresses(false); strings.Contains(got, "192.168.65.254") || !strings.Contains(got, "192.168.65.7/32") {
		t.Errorf("Addresses(false) = %q", got)
	}
}

func TestGatewayRules(t *testing.T) {
	want := [][]string{
		{"-w", "-t", "nat", "-N", "MACHINE-HOST-GATEWAY"},
		{"-w", "-t", "nat", "-A", "MACHINE-HOST-GATEWAY", "-p", "tcp", "-j", "DNAT", "--to-destination", "192.168.65.254:2410"},
		{"-w", "-t", "nat", "-A", "MACHINE-HOST-GATEWAY", "-p", "udp", "-j", "DNAT", "--to-destination", "192.168.65.254:2410"},
		{"-w", "-t", "nat", "-I", "PREROUTING", "1", "-d", "192.168.65.254/32", "-j", "MACHINE-HOST-GATEWAY"},
		{"-w", "-t", "nat", "-I", "OUTPUT", "1", "-d", "192.168.65.254/32", "-j", "MACHINE-HOST-GATEWAY"},
	}
	if got := GatewayRules(); !reflect.DeepEqual(got, want) {
		t.Errorf("GatewayRules() =\n%q\nwant\n%q", got, want)
	}
}
