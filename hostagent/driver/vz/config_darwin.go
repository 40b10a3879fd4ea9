//go:build darwin && cgo

package vz

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/Code-Hex/vz/v3"

	"github.com/machine-run/machine/hostagent/netstack"
)

// buildConfig turns the plan into a validated vz configuration; every decision is in plan.
// It returns the files the configuration refers to (the serial console, the VM's end of the
// forwarding NIC); the caller keeps them open while the VM runs and closes them afterwards,
// also on error. The host end of the forwarding NIC, when the plan has one, is the caller's
// once buildConfig returns without error.
func buildConfig(plan Plan) (_ *vz.VirtualMachineConfiguration, files []*os.File, nicHost net.Conn, err error) {
	defer func() {
		if err != nil && nicHost != nil {
			nicHost.Close()
			nicHost = nil
		}
	}()
	conf, files, err := buildDevices(plan)
	if err != nil {
		return nil, files, nil, err
	}
	nat, err := networkDevice(plan.Network)
	if err != nil {
		return nil, files, nil, err
	}
	nics := []*vz.VirtioNetworkDeviceConfiguration{nat}
	if plan.ForwardNIC != nil {
		dev, host, vmEnd, err := forwardNIC(*plan.ForwardNIC)
		if vmEnd != nil {
			files = append(files, vmEnd)
		}
		if err != nil {
			return nil, files, nil, err
		}
		nics, nicHost = append(nics, dev), host
	}
	conf.SetNetworkDevicesVirtualMachineConfiguration(nics)
	if ok, err := conf.Validate(); !ok || err != nil {
		if err == nil {
			err = errors.New("rejected without a reason")
		}
		return nil, files, nicHost, fmt.Errorf("invalid vm configuration (%d CPUs, %d MiB): %w", plan.CPUs, plan.MemoryBytes>>20, err)
	}
	return conf, files, nicHost, nil
}

// forwardNIC attaches one end of a new netstack.Pair as a virtio-net device and returns the
// device, the host end and the VM's end (which must stay open while the VM runs).
func forwardNIC(f ForwardNIC) (*vz.VirtioNetworkDeviceConfiguration, net.Conn, *os.File, error) {
	host, vmEnd, err := netstack.Pair()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("forwarding NIC: %w", err)
	}
	fail := func(what string, err error) (*vz.VirtioNetworkDeviceConfiguration, net.Conn, *os.File, error) {
		host.Close()
		return nil, nil, vmEnd, fmt.Errorf("forwarding NIC: %s: %w", what, err)
	}
	att, err := vz.NewFileHandleNetworkDeviceAttachment(vmEnd)
	if err != nil {
		return fail("file-handle attachment", err)
	}
	if err := att.SetMaximumTransmissionUnit(f.MTU); err != nil {
		return fail(fmt.Sprintf("MTU %d", f.MTU), err)
	}
	dev, err := vz.NewVirtioNetworkDeviceConfiguration(att)
	if err != nil {
		return fail("virtio network device", err)
	}
	mac, err := vz.NewMACAddress(f.MAC)
	if err != nil {
		return fail("mac address "+f.MAC.String(), err)
	}
	dev.SetMACAddress(mac)
	return dev, host, vmEnd, nil
}

// buildDevices is the configuration with every device but the network ones, unvalidated.
func buildDevices(plan Plan) (*vz.VirtualMachineConfiguration, []*os.File, error) {
	boot, err := vz.NewLinuxBootLoader(plan.Kernel,
		vz.WithInitrd(plan.Initrd),
		vz.WithCommandLine(plan.Cmdline),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("boot loader: %w", err)
	}
	conf, err := vz.NewVirtualMachineConfiguration(boot, plan.CPUs, plan.MemoryBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("vm configuration: %w", err)
	}

	disks, err := storageDevices(plan.Disks)
	if err != nil {
		return nil, nil, err
	}
	conf.SetStorageDevicesVirtualMachineConfiguration(disks)

	console, files, err := serialConsole(plan.SerialLog)
	if err != nil {
		return nil, files, err
	}
	conf.SetSerialPortsVirtualMachineConfiguration([]*vz.VirtioConsoleDeviceSerialPortConfiguration{console})

	if plan.Entropy {
		entropy, err := vz.NewVirtioEntropyDeviceConfiguration()
		if err != nil {
			return nil, files, fmt.Errorf("entropy device: %w", err)
		}
		conf.SetEntropyDevicesVirtualMachineConfiguration([]*vz.VirtioEntropyDeviceConfiguration{entropy})
	}
	if plan.Balloon {
		balloon, err := vz.NewVirtioTraditionalMemoryBalloonDeviceConfiguration()
		if err != nil {
			return nil, files, fmt.Errorf("memory balloon: %w", err)
		}
		conf.SetMemoryBalloonDevicesVirtualMachineConfiguration([]vz.MemoryBalloonDeviceConfiguration{balloon})
	}
	if plan.Vsock {
		sock, err := vz.NewVirtioSocketDeviceConfiguration()
		if err != nil {
			return nil, files, fmt.Errorf("vsock device: %w", err)
		}
		conf.SetSocketDevicesVirtualMachineConfiguration([]vz.SocketDeviceConfiguration{sock})
	}

	shares, err := directoryShares(plan.Shares, plan.Rosetta)
	if err != nil {
		return nil, files, err
	}
	if len(shares) > 0 {
		conf.SetDirectorySharingDevicesVirtualMachineConfiguration(shares)
	}

	return conf, files, nil
}

// storageDevices attaches the disks in plan order (root /dev/vda, data /dev/vdb).
func storageDevices(disks []Disk) ([]vz.StorageDeviceConfiguration, error) {
	var devs []vz.StorageDeviceConfiguration
	for _, d := range disks {
		caching, err := vzCaching(d.Caching)
		if err != nil {
			return nil, err
		}
		sync, err := vzSync(d.Sync)
		if err != nil {
			return nil, err
		}
		att, err := vz.NewDiskImageStorageDeviceAttachmentWithCacheAndSync(d.Path, d.ReadOnly, caching, sync)
		if err != nil {
			return nil, fmt.Errorf("disk %s (%s): %w", d.ID, d.Path, err)
		}
		blk, err := vz.NewVirtioBlockDeviceConfiguration(att)
		if err != nil {
			return nil, fmt.Errorf("virtio block device %s: %w", d.ID, err)
		}
		// A stable identifier shows up as /dev/disk/by-id/virtio-<id> (macOS 12.3+); the
		// guest does not depend on it.
		_ = blk.SetBlockDeviceIdentifier(d.ID)
		devs = append(devs, blk)
	}
	return devs, nil
}

func vzCaching(c DiskCaching) (vz.DiskImageCachingMode, error) {
	switch c {
	case CachingAutomatic:
		return vz.DiskImageCachingModeAutomatic, nil
	case CachingCached:
		return vz.DiskImageCachingModeCached, nil
	case CachingUncached:
		return vz.DiskImageCachingModeUncached, nil
	}
	return 0, fmt.Errorf("disk caching mode %q: unknown", c)
}

func vzSync(s DiskSync) (vz.DiskImageSynchronizationMode, error) {
	switch s {
	case SyncFull:
		return vz.DiskImageSynchronizationModeFull, nil
	case SyncFsync:
		return vz.DiskImageSynchronizationModeFsync, nil
	case SyncNone:
		return vz.DiskImageSynchronizationModeNone, nil
	}
	return 0, fmt.Errorf("disk synchronization mode %q: unknown", s)
}

func networkDevice(n Network) (*vz.VirtioNetworkDeviceConfiguration, error) {
	if n.Mode != NetworkNAT {
		return nil, fmt.Errorf("network mode %q: only %s is supported", n.Mode, NetworkNAT)
	}
	nat, err := vz.NewNATNetworkDeviceAttachment()
	if err != nil {
		return nil, fmt.Errorf("nat network: %w", err)
	}
	nic, err := vz.NewVirtioNetworkDeviceConfiguration(nat)
	if err != nil {
		return nil, fmt.Errorf("virtio network device: %w", err)
	}
	mac, err := vz.NewMACAddress(n.MAC)
	if err != nil {
		return nil, fmt.Errorf("mac address %s: %w", n.MAC, err)
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

// directoryShares makes one virtiofs device per share, plus Rosetta if planned.
func directoryShares(shares []Share, rosetta *RosettaShare) ([]vz.DirectorySharingDeviceConfiguration, error) {
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
			return nil, fmt.Errorf("share %q: virtiofs device: %w", s.Tag, err)
		}
		fs.SetDirectoryShare(single)
		devs = append(devs, fs)
	}
	if rosetta != nil {
		dev, err := rosettaShare(rosetta.Tag)
		if err != nil {
			return nil, err
		}
		devs = append(devs, dev)
	}
	return devs, nil
}
