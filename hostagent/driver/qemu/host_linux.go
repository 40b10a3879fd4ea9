package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"
)

func hostProbe() Probe {
	return Probe{
		ReadFile: os.ReadFile,
		Exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		OpenRW: func(p string) bool {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return false
			}
			f.Close()
			return true
		},
	}
}

// testNoPdeathsigEnv, when set to 1 in the host agent's environment, turns the parent-death
// signal off, so QEMU outlives a killed host agent as it does on macOS. Only tests set it: it
// lets Linux exercise the record that ends such a QEMU (orphan.go).
const testNoPdeathsigEnv = "MACHINE_TEST_QEMU_NO_PDEATHSIG"

// childAttr makes QEMU die with the host agent: Linux sends SIGKILL to the child when the
// thread that started it exits, so startChild pins that thread for the agent's lifetime.
func childAttr() *syscall.SysProcAttr {
	if os.Getenv(testNoPdeathsigEnv) == "1" {
		return &syscall.SysProcAttr{Setpgid: true}
	}
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

func startChild(cmd *exec.Cmd, exited <-chan struct{}) error {
	// The parent-death signal fires when the starting OS thread exits, not the process: keep
	// that thread locked and alive until QEMU has exited.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-exited
		}
	}()
	return <-errc
}

// dialVsock connects to a guest vsock port, retrying while the guest agent is not listening.
func dialVsock(ctx context.Context, cid, port uint32, exited <-chan struct{}) (net.Conn, error) {
	delay := 10 * time.Millisecond
	for {
		c, err := vsock.Dial(cid, port, nil)
		if err == nil {
			return c, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("vsock dial %d:%d: the VM exited", cid, port)
		case <-ctx.Done():
			return nil, fmt.Errorf("vsock dial %d:%d: %w (last error: %v)", cid, port, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}
