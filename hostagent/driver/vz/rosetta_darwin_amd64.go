//go:build darwin && cgo

package vz

import (
	"fmt"

	"github.com/Code-Hex/vz/v3"
)

// Intel Macs have no Rosetta for Linux, and vz v3.7.1 has no Rosetta API for amd64.

func rosettaAvailable() error {
	return fmt.Errorf("rosetta is only available on Apple silicon Macs: %w", ErrRosettaUnsupported)
}

func rosettaShare(string) (vz.DirectorySharingDeviceConfiguration, error) {
	return nil, rosettaAvailable()
}
