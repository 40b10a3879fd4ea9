//go:build darwin && cgo

package vz

import (
	"fmt"

	"github.com/Code-Hex/vz/v3"
)

// rosettaAvailable checks Rosetta for Linux (macOS 13+ on Apple silicon).
func rosettaAvailable() error {
	switch vz.LinuxRosettaDirectoryShareAvailability() {
	case vz.LinuxRosettaAvailabilityInstalled:
		return nil
	case vz.LinuxRosettaAvailabilityNotInstalled:
		return ErrRosettaNotInstalled
	default:
		return fmt.Errorf("rosetta for Linux is not supported on this Mac (needs macOS 13 or newer): %w",
			ErrRosettaUnsupported)
	}
}

func rosettaShare(tag string) (vz.DirectorySharingDeviceConfiguration, error) {
	share, err := vz.NewLinuxRosettaDirectoryShare()
	if err != nil {
		return nil, fmt.Errorf("rosetta share: %w", err)
	}
	fs, err := vz.NewVirtioFileSystemDeviceConfiguration(tag)
	if err != nil {
		return nil, fmt.Errorf("rosetta share: %w", err)
	}
	fs.SetDirectoryShare(share)
	return fs, nil
}
