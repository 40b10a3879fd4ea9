package engine

import (
	"slices"
	"testing"
)

func TestDockerdArgsHostGateway(t *testing.T) {
	e := &Engine{}
	if args := e.dockerdArgs(); slices.ContainsFunc(args, func(a string) bool { return len(a) > 17 && a[:17] == "--host-gateway-ip" }) {
		t.Errorf("no gateway set, yet %q", args)
	}
	e.HostGatewayIP = "192.168.65.254"
	if args := e.dockerdArgs(); !slices.Contains(args, "--host-gateway-ip=192.168.65.254") || args[0] != "dockerd" {
		t.Errorf("dockerdArgs() = %q, want dockerd ... --host-gateway-ip=192.168.65.254", args)
	}
}
