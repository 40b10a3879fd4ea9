package driver

import (
	"fmt"
	"time"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

// Devices every driver gives the guest: the root image is the first virtio disk and the
// data disk the second.
const (
	RootDevice = "/dev/vda"
	DataDevice = "/dev/vdb"
)

// BootParams returns the machine-level part of the boot contract for c: the image's kernel
// words, root and data devices, hostname, shares, Rosetta and the host clock. Every driver
// starts from it and sets only its transport (Console, Channel, Net, ForwardNIC, Token) before encoding,
// so two drivers cannot tell the same machine different things.
func (c Config) BootParams() (bootparams.Params, error) {
	p, err := bootparams.Decode(c.Cmdline)
	if err != nil {
		return bootparams.Params{}, fmt.Errorf("machine %q: image command line: %w (rebuild or re-pull the image)", c.Name, err)
	}
	if len(p.Unknown) > 0 {
		return bootparams.Params{}, fmt.Errorf("machine %q: image command line has contract words this version does not know: %q (rebuild or re-pull the image)", c.Name, p.Unknown)
	}
	p.Root, p.Data = RootDevice, DataDevice
	p.Hostname = c.Name
	p.Shares = nil
	for _, s := range c.Shares {
		p.Shares = append(p.Shares, bootparams.Share{Tag: s.Tag, GuestPath: s.GuestPath, ReadOnly: s.ReadOnly})
	}
	p.Rosetta = nil
	if c.Rosetta != nil {
		p.Rosetta = &bootparams.Rosetta{Tag: bootparams.RosettaTag, MountPoint: bootparams.RosettaMountPoint}
	}
	p.NoHostAccess = c.NoHostAccess
	p.Time = c.BootTime
	if p.Time.IsZero() {
		p.Time = time.Now()
	}
	// Transport fields are the driver's: clear what an image might have said.
	p.Console, p.Channel, p.Net, p.Token, p.TokenFrom = "", "", "", "", ""
	p.ForwardNIC = false
	return p, nil
}
