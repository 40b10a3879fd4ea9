package main

import (
	"fmt"
	"os"

	"github.com/machine-run/machine/hostagent/store"
)

// killAgent kills the machine's host agent; QEMU dies with it (parent-death signal on Linux,
// job object on Windows).
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
