package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/machine-run/machine/hostagent/driver/qemu"
	"github.com/machine-run/machine/hostagent/store"
)

// killAgent kills the machine's host agent. QEMU dies with it on Linux (parent-death signal)
// and Windows (job object); on macOS it outlives the agent until endOrphanQEMU ends it.
func killAgent(m *store.Machine) error {
	pid := store.ReadPid(m.PidFile())
	if pid <= 0 {
		return fmt.Errorf("no pid in %s", m.PidFile())
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// orphanGrace bounds the clean power-off of an orphaned QEMU before it is killed.
const orphanGrace = 30 * time.Second

// endOrphanQEMU ends the QEMU a killed host agent left running (macOS has no parent-death
// signal), if the machine folder records one that still runs: a clean ACPI power-off first
// unless force, then kill. It returns nil when there was none, or when a host agent runs (it
// owns its QEMU).
func endOrphanQEMU(ctx context.Context, m *store.Machine, force bool) (*qemu.Orphan, error) {
	if _, err := os.Stat(filepath.Join(m.Dir, qemu.RecordFile)); err != nil {
		return nil, nil
	}
	// Holding the agent lock proves no host agent owns the recorded QEMU, and keeps one from
	// starting meanwhile.
	lock, err := store.TryLock(m.AgentLock())
	if errors.Is(err, store.ErrLocked) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	grace := orphanGrace
	if force {
		grace = 0
	}
	o, err := qemu.EndOrphan(ctx, m.Dir, grace)
	if err != nil {
		return nil, fmt.Errorf("machine %q: %w", m.Name, err)
	}
	return o, nil
}

// orphanText says how an orphaned QEMU was ended.
func orphanText(o *qemu.Orphan) string {
	if o.Clean {
		return fmt.Sprintf("its host agent had been killed; its QEMU (pid %d) powered off cleanly", o.Pid)
	}
	return fmt.Sprintf("its host agent had been killed; its QEMU (pid %d) was killed", o.Pid)
}
