//go:build !(darwin && cgo)

package main

import (
	"fmt"
	"runtime"

	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/driver/vz"
)

const vzAvailable = false

func newVZ(driver.Config) (driver.Driver, error) {
	return nil, fmt.Errorf("the vz driver needs macOS and a build with cgo: %w; use --driver qemu", driver.ErrUnsupported)
}

// checkVZ says why this binary cannot run vz machines: not a Mac (or too old a one), or a
// Mac build without cgo.
func checkVZ() error {
	if err := vz.CheckHost(); err != nil {
		return err
	}
	if runtime.GOOS == "darwin" {
		return fmt.Errorf("%w: this machine binary was built without cgo; build it on this Mac with `make` (cgo and signing), or use --driver qemu", vz.ErrHostUnsupported)
	}
	return nil
}
