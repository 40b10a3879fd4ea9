//go:build darwin && cgo

package vz

import "github.com/Code-Hex/vz/v3"

func stateFromVZ(s vz.VirtualMachineState) State {
	switch s {
	case vz.VirtualMachineStateStopped:
		return StateStopped
	case vz.VirtualMachineStateRunning:
		return StateRunning
	case vz.VirtualMachineStatePaused:
		return StatePaused
	case vz.VirtualMachineStateError:
		return StateError
	case vz.VirtualMachineStateStarting:
		return StateStarting
	case vz.VirtualMachineStatePausing:
		return StatePausing
	case vz.VirtualMachineStateResuming:
		return StateResuming
	case vz.VirtualMachineStateStopping:
		return StateStopping
	case vz.VirtualMachineStateSaving:
		return StateSaving
	case vz.VirtualMachineStateRestoring:
		return StateRestoring
	}
	return StateUnknown
}
