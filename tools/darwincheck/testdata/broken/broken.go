//go:build darwin

// Package broken misuses vz three ways; darwincheck must report exactly the ERROR lines.
package broken

import "github.com/Code-Hex/vz/v3"

func misuse(vm *vz.VirtualMachine, conn *vz.VirtioSocketConnection) error {
	if _, err := vz.NewVirtioFileSystemDeviceConfiguration(42); err != nil { // ERROR: wrong argument type
		return err
	}
	if err := conn.CloseWrite(); err != nil { // ERROR: no such method in vz v3.7.1
		return err
	}
	err := vm.RequestStop() // ERROR: wrong number of results, it returns (bool, error)
	return err
}
