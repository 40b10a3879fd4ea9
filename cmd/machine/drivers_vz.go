//go:build darwin && cgo

package main

import (
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/driver/vz"
)

const vzAvailable = true

// newVZ makes the vz driver. Rosetta is machine-level and reaches it in dc.Rosetta (from
// `create --rosetta`, see hostagent.driverConfig): vz checks that Rosetta is installed and
// attaches Apple's share under the boot contract's tag.
func newVZ(dc driver.Config) (driver.Driver, error) { return vz.New(dc, vz.Options{}) }

// checkVZ reports whether this host can run vz machines (macOS vz.MinMacOS or newer).
func checkVZ() error { return vz.CheckHost() }
