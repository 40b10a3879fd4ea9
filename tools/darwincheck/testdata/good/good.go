//go:build darwin

// Package good uses vz correctly from a plain file, a cgo file and both kinds of test file;
// darwincheck must find nothing wrong.
package good

import "github.com/Code-Hex/vz/v3"

func stop(vm *vz.VirtualMachine) (bool, error) {
	if !vm.CanRequestStop() {
		return false, nil
	}
	return vm.RequestStop()
}
