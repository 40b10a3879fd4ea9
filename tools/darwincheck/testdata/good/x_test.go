package good_test

import (
	"testing"

	"github.com/Code-Hex/vz/v3"
)

func TestState(t *testing.T) {
	var s vz.VirtualMachineState = vz.VirtualMachineStateRunning
	if s.String() == "" {
		t.Fatal("empty state name")
	}
}
