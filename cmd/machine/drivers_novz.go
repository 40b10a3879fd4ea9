//go:build !(darwin && cgo)

package main

import (
	"fmt"

	"github.com/machine-run/machine/hostagent/driver"
)

const vzAvailable = false

func newVZ(driver.Config) (driver.Driver, error) {
	return nil, fmt.Errorf("the vz driver needs macOS and a build with cgo: %w; use --driver qemu", driver.ErrUnsupported)
}
