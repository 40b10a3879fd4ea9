package qemu

import (
	"context"
	"fmt"

	"github.com/machine-run/machine/hostagent/driver"
)

// Pause implements driver.Pauser: QMP stop halts the vCPUs (QEMU keeps serving its devices'
// host ends). The guest channel's keepalive is held first, since a stopped guest answers
// nothing.
var _ driver.Pauser = (*Driver)(nil)

func (d *Driver) Pause(ctx context.Context) error {
	if d.link != nil {
		d.link.Hold()
	}
	if err := d.qmp(ctx, "stop"); err != nil {
		if d.link != nil {
			d.link.Release()
		}
		return fmt.Errorf("qemu: machine %q: pause: %w", d.cfg.Name, err)
	}
	return nil
}

// Resume implements driver.Pauser: QMP cont, then the keepalive is judged again.
func (d *Driver) Resume(ctx context.Context) error {
	if err := d.qmp(ctx, "cont"); err != nil {
		return fmt.Errorf("qemu: machine %q: resume: %w", d.cfg.Name, err)
	}
	if d.link != nil {
		d.link.Release()
	}
	return nil
}

func (d *Driver) qmp(ctx context.Context, command string) error {
	return qmpCommand(ctx, "unix", d.host.QMPSocket, command)
}
