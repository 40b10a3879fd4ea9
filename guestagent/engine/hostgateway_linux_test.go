package engine

import (
	"slices"
	"strings"
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

func TestDockerdArgsMTU(t *testing.T) {
	e := &Engine{}
	if args := e.dockerdArgs(); slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "mtu") }) {
		t.Errorf("no MTU set, yet %q", args)
	}
	e.MTU = 65520
	args := e.dockerdArgs()
	for _, want := range []string{"--mtu=65520", "--default-network-opt=bridge=com.docker.network.driver.mtu=65520"} {
		if !slices.Contains(args, want) {
			t.Errorf("dockerdArgs() = %q, want %s", args, want)
		}
	}
}
