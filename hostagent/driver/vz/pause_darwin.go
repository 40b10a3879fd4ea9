//go:build darwin && cgo

package vz

import (
	"context"
	"fmt"

	"github.com/machine-run/machine/hostagent/driver"
)

// Pause implements driver.Pauser with the framework's pause: the vCPUs stop, memory stays.
// Unlike QEMU under TCG, the guest clock does not follow the host's while paused: the host
// agent pushes the clock after every resume.
var _ driver.Pauser = (*Driver)(nil)

func (d *Driver) Pause(ctx context.Context) error {
	vm, _, err := d.started()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !vm.CanPause() {
		return fmt.Errorf("machine %q: cannot pause in state %s", d.cfg.Name, stateFromVZ(vm.State()))
	}
	if err := vm.Pause(); err != nil {
		return fmt.Errorf("machine %q: pause: %w", d.cfg.Name, err)
	}
	return nil
}

// Resume implements driver.Pauser.
func (d *Driver) Resume(ctx context.Context) error {
	vm, _, err := d.started()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !vm.CanResume() {
		return fmt.Errorf("machine %q: cannot resume in state %s", d.cfg.Name, stateFromVZ(vm.State()))
	}
	if err := vm.Resume(); err != nil {
		return fmt.Errorf("machine %q: resume: %w", d.cfg.Name, err)
	}
	return nil
}
