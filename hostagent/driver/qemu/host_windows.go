package qemu

import (
	"os"
	"os/exec"
	"syscall"
)

func hostProbe() Probe {
	return Probe{
		ReadFile: os.ReadFile,
		Exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		OpenRW:   func(string) bool { return false },
	}
}

func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{HideWindow: true} }

func startChild(cmd *exec.Cmd, _ <-chan struct{}) error { return cmd.Start() }
