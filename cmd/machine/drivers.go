package main

import (
	"fmt"

	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/driver/qemu"
	"github.com/machine-run/machine/hostagent/store"
)

// newDriver returns the driver a machine's config names.
func newDriver(c *store.Config) func(driver.Config) (driver.Driver, error) {
	return func(dc driver.Config) (driver.Driver, error) {
		switch c.Driver {
		case "qemu":
			return qemu.New(dc)
		case "vz":
			return newVZ(dc)
		}
		return nil, fmt.Errorf("machine %q: unknown driver %q (want qemu or vz)", c.Name, c.Driver)
	}
}
