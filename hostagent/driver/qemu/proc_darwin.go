package qemu

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// szomb is SZOMB in <sys/proc.h>: the process has exited but is not reaped yet.
const szomb = 5

// processStart is the process's start time (seconds.microseconds since the epoch) from
// the kernel's process table.
func processStart(pid int) (string, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EIO) {
		return "", errGone // EIO: the kernel returned no entry for pid
	}
	if err != nil {
		return "", fmt.Errorf("sysctl kern.proc.pid.%d: %w", pid, err)
	}
	if kp.Proc.P_pid != int32(pid) || kp.Proc.P_stat == szomb {
		return "", errGone
	}
	return fmt.Sprintf("%d.%06d", kp.Proc.P_starttime.Sec, kp.Proc.P_starttime.Usec), nil
}
