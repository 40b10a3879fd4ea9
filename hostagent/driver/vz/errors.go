package vz

import "errors"

// ErrVMStopped is returned by DialGuest once the VM has exited.
var ErrVMStopped = errors.New("virtual machine has stopped")

// ErrVMError is returned by Wait when Virtualization.framework moved the VM into its error
// state (the guest crashed the VM or the host ran out of resources).
var ErrVMError = errors.New("virtual machine stopped with an error")

// ErrRosettaNotInstalled is returned by New when driver.Config.Rosetta is set on an Apple silicon
// Mac where Rosetta is not installed yet.
var ErrRosettaNotInstalled = errors.New("rosetta is not installed: run `softwareupdate --install-rosetta`")

// ErrRosettaUnsupported is returned by New when driver.Config.Rosetta is set on a Mac that cannot
// run Rosetta for Linux at all (Intel, or macOS older than 13).
var ErrRosettaUnsupported = errors.New("rosetta for Linux is unavailable")
