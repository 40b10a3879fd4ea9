package vz

import (
	"fmt"
	"net"

	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/hostagent/driver"
)

// Plan is everything the VM is made of, decided in portable Go so it is table-tested on
// every OS; only config_darwin.go turns it into Virtualization.framework objects.
type Plan struct {
	Kernel  string
	Initrd  string
	Cmdline string // the boot contract, encoded by bootparams

	CPUs        uint
	MemoryBytes uint64

	// Disks in attachment order: the root image is /dev/vda, the data disk /dev/vdb.
	Disks []Disk
	// Shares are one virtiofs device each.
	Shares []Share
	// Rosetta, when set, attaches Apple's Rosetta share under its tag.
	Rosetta *RosettaShare

	Network Network
	// ForwardNIC, when set, is the forwarding NIC (bootparams.ForwardNICMAC): a second
	// virtio-net device on a file-handle attachment whose other end the host agent runs
	// its TCP/IP stack on.
	ForwardNIC *ForwardNIC
	SerialLog  string // the virtio console (hvc0) is appended to this file
	Vsock      bool   // the guest agent's channel
	Entropy    bool
	// Balloon attaches Apple's traditional memory balloon. Virtualization.framework lets the
	// host set a target size (inflate it to take memory back) but has no free page reporting:
	// pages the guest frees are not given back unless the host shrinks the target.
	Balloon bool
}

// Disk is one virtio block device backed by a disk image.
type Disk struct {
	ID       string // block device identifier (/dev/disk/by-id/virtio-<ID>)
	Path     string
	ReadOnly bool
	Caching  DiskCaching
	Sync     DiskSync
}

// DiskCaching is the framework's disk image caching mode.
type DiskCaching string

// DiskSync is the framework's disk image synchronization mode.
type DiskSync string

// Caching and synchronization modes (VZDiskImageCachingMode, VZDiskImageSynchronizationMode).
const (
	CachingAutomatic DiskCaching = "automatic"
	CachingCached    DiskCaching = "cached"
	CachingUncached  DiskCaching = "uncached"

	SyncFull  DiskSync = "full"
	SyncFsync DiskSync = "fsync"
	SyncNone  DiskSync = "none"
)

// Share is one host folder exposed over virtiofs.
type Share struct {
	Tag      string
	HostPath string
	ReadOnly bool
}

// RosettaShare is Apple's Rosetta translator exposed over virtiofs.
type RosettaShare struct {
	Tag string
}

// Network is the VM's one NIC.
type Network struct {
	Mode string // NetworkNAT
	MAC  net.HardwareAddr
}

// ForwardNIC is the forwarding NIC's device: its MAC and the MTU its attachment is given
// (the framework's file-handle attachment takes up to 65535 since macOS 13).
type ForwardNIC struct {
	MAC net.HardwareAddr
	MTU int
}

// NetworkNAT is the framework's NAT attachment, which serves DHCP.
const NetworkNAT = "nat"

// Console and transport this driver declares in the boot contract.
const (
	console = "hvc0"
	channel = bootparams.ChannelVsock
	netMode = bootparams.NetDHCP
)

// NewPlan decides the VM for cfg. Both disks use host caching with fsync synchronization:
// the automatic caching mode corrupted ext4 data disks (lima#1957, vfkit#76). A guest flush
// reaches the host's disk through fsync(2), so a write the guest saw flushed survives the VM,
// the host agent or the guest crashing; it is not F_FULLFSYNC, so a host power loss may still
// lose what the drive had cached.
func NewPlan(cfg driver.Config, opts Options) (Plan, error) {
	if cfg.CPUs < 1 || cfg.MemoryMiB < 128 {
		return Plan{}, fmt.Errorf("vz: machine %q: need at least 1 CPU and 128 MiB (have %d, %d MiB)", cfg.Name, cfg.CPUs, cfg.MemoryMiB)
	}
	for _, f := range []struct{ what, path string }{
		{"kernel", cfg.Kernel}, {"initrd", cfg.Initrd}, {"root image", cfg.RootImage},
		{"data disk", cfg.DataDisk}, {"serial log", cfg.SerialLog},
	} {
		if f.path == "" {
			return Plan{}, fmt.Errorf("vz: machine %q: no %s path", cfg.Name, f.what)
		}
	}
	if r := cfg.Rosetta; r != nil {
		if cfg.Arch != "arm64" {
			return Plan{}, fmt.Errorf("vz: machine %q: Rosetta runs amd64 binaries in an arm64 guest; this guest is %s", cfg.Name, cfg.Arch)
		}
		if r.HostPath != "" {
			return Plan{}, fmt.Errorf("vz: machine %q: the vz driver shares Apple's Rosetta, not a folder (%s)", cfg.Name, r.HostPath)
		}
	}
	p, err := cfg.BootParams()
	if err != nil {
		return Plan{}, fmt.Errorf("vz: %w", err)
	}
	p.Console, p.Channel, p.Net = console, channel, netMode
	p.ForwardNIC = true
	fwdMAC, err := net.ParseMAC(bootparams.ForwardNICMAC)
	if err != nil {
		return Plan{}, fmt.Errorf("vz: forwarding NIC: %w", err)
	}
	line, err := p.Encode()
	if err != nil {
		return Plan{}, fmt.Errorf("vz: machine %q: %w", cfg.Name, err)
	}
	plan := Plan{
		Kernel: cfg.Kernel, Initrd: cfg.Initrd, Cmdline: line,
		CPUs: uint(cfg.CPUs), MemoryBytes: uint64(cfg.MemoryMiB) << 20,
		Disks: []Disk{
			{ID: "machine-root", Path: cfg.RootImage, ReadOnly: true, Caching: CachingCached, Sync: SyncFsync},
			{ID: "machine-data", Path: cfg.DataDisk, Caching: CachingCached, Sync: SyncFsync},
		},
		Network:    Network{Mode: NetworkNAT, MAC: macForName(cfg.Name)},
		ForwardNIC: &ForwardNIC{MAC: fwdMAC, MTU: bootparams.ForwardNICMTU},
		SerialLog:  cfg.SerialLog,
		Vsock:      true, Entropy: true, Balloon: true,
	}
	for _, s := range cfg.Shares {
		plan.Shares = append(plan.Shares, Share{Tag: s.Tag, HostPath: s.HostPath, ReadOnly: s.ReadOnly})
	}
	if p.Rosetta != nil {
		plan.Rosetta = &RosettaShare{Tag: p.Rosetta.Tag}
	}
	return plan, nil
}
