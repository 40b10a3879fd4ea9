package qemu

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

func hostProbe() Probe {
	return Probe{
		ReadFile: os.ReadFile,
		Exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		OpenRW:   func(string) bool { return false },
		HVFSupported: func() bool {
			v, err := unix.SysctlUint32("kern.hv_support")
			return err == nil && v == 1
		},
	}
}

// childAttr puts QEMU in its own process group. macOS has no parent-death signal: the host
// agent kills QEMU on every exit path it controls, and the record in orphan.go lets the next
// start, stop or rm end a QEMU whose host agent was killed.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func startChild(cmd *exec.Cmd, _ <-chan struct{}) error { return cmd.Start() }
