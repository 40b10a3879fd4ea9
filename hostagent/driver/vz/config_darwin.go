//go:build darwin && cgo

package vz

import (
	"errors"
	"fmt"
	"os"

	"github.com/Code-Hex/vz/v3"

	"github.com/machine-run/machine/hostagent/driver"
)

// buildConfig turns cfg into a validated vz configuration. It returns the files the
// configuration refers to (the serial console); the caller keeps them open while the VM runs
// and closes them afterwards, also on error.
func buildConfig(cfg driver.Config, opts Options) (*vz.VirtualMachineConfiguration, []*os.File, error) {
	boot, err := vz.NewLinuxBootLoader(cfg.Kernel,
		vz.WithInitrd(cfg.Initrd),
		vz.WithCommandLine(kernelCmdline(cfg.Cmdline)),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("boot loader: %w", err)
	}
	conf, err := vz.NewVirtualMachineConfiguration(boot, uint(cfg.CPUs), uint64(cfg.MemoryMiB)*1024*1024)
	if err != nil {
		return nil, nil, fmt.Errorf("vm configuration: %w", err)
	}

	disks, err := storageDevices(cfg)
	if err != nil {
		return nil, nil, err
	}
	conf.SetStorageDevicesVirtualMachineConfiguration(disks)

	nic, err := natNetwork(cfg.Name)
	if err != nil {
		return nil, nil, err
	}
	conf.SetNetworkDevicesVirtualMachineConfiguration([]*vz.VirtioNetworkDeviceConfiguration{nic})

	console, files, err := serialConsole(cfg.SerialLog)
	if err != nil {
		return nil, files, err
	}
	conf.SetSerialPortsVirtualMachineConfiguration([]*vz.VirtioConsoleDeviceSerialPortConfiguration{console})

	entropy, err := vz.NewVirtioEntropyDeviceConfiguration()
	if err != nil {
		return nil, files, fmt.Errorf("entropy device: %w", err)
	}
	conf.SetEntropyDevicesVirtualMachineConfiguration([]*vz.VirtioEntropyDeviceConfiguration{entropy})

	balloon, err := vz.NewVirtioTraditionalMemoryBalloonDeviceConfiguration()
	if err != nil {
		return nil, files, fmt.Errorf("memory balloon: %w", err)
	}
	conf.SetMemoryBalloonDevicesVirtualMachineConfiguration([]vz.MemoryBalloonDeviceConfiguration{balloon})

	sock, err := vz.NewVirtioSocketDeviceConfiguration()
	if err != nil {
		return nil, files, fmt.Errorf("vsock device: %w", err)
	}
	conf.SetSocketDevicesVirtualMachineConfiguration([]vz.SocketDeviceConfiguration{sock})

	shares, err := directoryShares(cfg.Shares, opts.Rosetta)
	if err != nil {
		return nil, files, err
	}
	if len(shares) > 0 {
		conf.SetDirectorySharingDevicesVirtualMachineConfiguration(shares)
	}

	if ok, err := conf.Validate(); !ok || err != nil {
		if err == nil {
			err = errors.New("rejected without a reason")
		}
		return nil, files, fmt.Errorf("invalid vm configuration (%d CPUs, %d MiB): %w", cfg.CPUs, cfg.MemoryMiB, err)
	}
	return conf, files, nil
}

// storageDevices attaches the root image read-only first (/dev/vda), then the data disk.
func storageDevices(cfg driver.Config) ([]vz.StorageDeviceConfiguration, error) {
	// Nothing is written to the root, so host caching is safe and flushes are moot.
	root, err := diskAttachment(cfg.RootImage, true, vz.DiskImageSynchronizationModeNone)
	if err != nil {
		return nil, fmt.Errorf("root image %s: %w", cfg.RootImage, err)
	}
	// Full: every guest flush becomes F_FULLFSYNC, so a write the guest saw acknowledged
	// after a flush survives a host crash or power loss (fsync alone does not on macOS).
	data, err := diskAttachment(cfg.DataDisk, false, vz.DiskImageSynchronizationModeFull)
	if err != nil {
		return nil, fmt.Errorf("data disk %s: %w", cfg.DataDisk, err)
	}
	var devs []vz.StorageDeviceConfiguration
	for i, att := range []vz.StorageDeviceAttachment{root, data} {
		blk, err := vz.NewVirtioBlockDeviceConfiguration(att)
		if err != nil {
			return nil, fmt.Errorf("virtio block device %d: %w", i, err)
		}
		// A stable identifier shows up as /dev/disk/by-id/virtio-<id> (macOS 12.3+); the
		// guest does not depend on it.
		_ = blk.SetBlockDeviceIdentifier([]string{"machine-root", "machine-data"}[i])
		devs = append(devs, blk)
	}
	return devs, nil
}

// diskAttachment uses host caching with the given synchronization (macOS 12+), falling back
// to the framework defaults on macOS 11 (automatic caching, full synchronization).
func diskAttachment(path string, readOnly bool, sync vz.DiskImageSynchronizationMode) (*vz.DiskImageStorageDeviceAttachment, error) {
	att, err := vz.NewDiskImageStorageDeviceAttachmentWithCacheAndSync(path, readOnly, vz.DiskImageCachingModeCached, sync)
	if errors.Is(err, vz.ErrUnsupportedOSVersion) || errors.Is(err, vz.ErrBuildTargetOSVersion) {
		att, err = vz.NewDiskImageStorageDeviceAttachment(path, readOnly)
	}
	return att, err
}

func natNetwork(name string) (*vz.VirtioNetworkDeviceConfiguration, error) {
	nat, err := vz.NewNATNetworkDeviceAttachment()
	if err != nil {
		return nil, fmt.Errorf("nat network: %w", err)
	}
	nic, err := vz.NewVirtioNetworkDeviceConfiguration(nat)
	if err != nil {
		return nil, fmt.Errorf("virtio network device: %w", err)
	}
	mac, err := vz.NewMACAddress(macForName(name))
	if err != nil {
		return nil, fmt.Errorf("mac address: %w", err)
	}
	nic.SetMACAddress(mac)
	return nic, nil
}

// serialConsole writes the guest's hvc0 to path (appending) and gives it nothing to read.
func serialConsole(path string) (*vz.VirtioConsoleDeviceSerialPortConfiguration, []*os.File, error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("serial log: %w", err)
	}
	in, err := os.Open(os.DevNull)
	if err != nil {
		out.Close()
		return nil, nil, fmt.Errorf("serial input: %w", err)
	}
	files := []*os.File{in, out}
	att, err := vz.NewFileHandleSerialPortAttachment(in, out)
	if err != nil {
		return nil, files, fmt.Errorf("serial attachment: %w", err)
	}
	console, err := vz.NewVirtioConsoleDeviceSerialPortConfiguration(att)
	if err != nil {
		return nil, files, fmt.Errorf("virtio console: %w", err)
	}
	return console, files, nil
}

// directoryShares makes one virtiofs device per share (macOS 12+), plus Rosetta if asked.
func directoryShares(shares []driver.Share, rosetta bool) ([]vz.DirectorySharingDeviceConfiguration, error) {
	var devs []vz.DirectorySharingDeviceConfiguration
	for _, s := range shares {
		dir, err := vz.NewSharedDirectory(s.HostPath, s.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("share %q (%s): %w", s.Tag, s.HostPath, err)
		}
		single, err := vz.NewSingleDirectoryShare(dir)
		if err != nil {
			return nil, fmt.Errorf("share %q: %w", s.Tag, err)
		}
		fs, err := vz.NewVirtioFileSystemDeviceConfiguration(s.Tag)
		if err != nil {
			return nil, fmt.Errorf("share %q: virtiofs device (tags are at most 36 bytes): %w", s.Tag, err)
		}
		fs.SetDirectoryShare(single)
		devs = append(devs, fs)
	}
	if rosetta {
		dev, err := rosettaShare()
		if err != nil {
			return nil, err
		}
		devs = append(devs, dev)
	}
	return devs, nil
}
