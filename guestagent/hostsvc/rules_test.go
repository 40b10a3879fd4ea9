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
		{"-t", "mangle", "-N", "MACHINE-HOST-GATEWAY"},
		{"-t", "mangle", "-A", "MACHINE-HOST-GATEWAY", "-p", "tcp", "-j", "TPROXY", "--on-ip", "192.168.65.254", "--on-port", "2410"},
		{"-t", "mangle", "-A", "MACHINE-HOST-GATEWAY", "-p", "udp", "-j", "TPROXY", "--on-ip", "192.168.65.254", "--on-port", "2410"},
		{"-t", "mangle", "-I", "PREROUTING", "1", "-d", "192.168.65.254/32", "-j", "MACHINE-HOST-GATEWAY"},
	}
	if got := GatewayRules(); !reflect.DeepEqual(got, want) {
		t.Errorf("GatewayRules() =\n%q\nwant\n%q", got, want)
	}
}
