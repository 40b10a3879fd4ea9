//go:build darwin && cgo

package main

import (
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/driver/vz"
)

const vzAvailable = true

func newVZ(dc driver.Config) (driver.Driver, error) { return vz.New(dc, vz.Options{}) }
