package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

func hostProbe() Probe {
	return Probe{
		ReadFile: os.ReadFile,
		Exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		OpenRW:   func(string) bool { return false },
	}
}

func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{HideWindow: true} }

// startChild starts QEMU inside a job object that kills it when the job's last handle closes.
// Only this process holds that handle (not inheritable), so when the host agent exits for any
// reason, crash and Task Manager included, Windows ends QEMU too. Windows 8 and later allow
// the job even when the host agent itself runs inside one (nested jobs).
func startChild(cmd *exec.Cmd, exited <-chan struct{}) error {
	job, err := killOnCloseJob()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		windows.CloseHandle(job)
		return err
	}
	if err := assignToJob(job, cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		windows.CloseHandle(job)
		return err
	}
	go func() {
		<-exited
		windows.CloseHandle(job)
	}()
	return nil
}

func killOnCloseJob() (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, fmt.Errorf("qemu: create job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{
			LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
		},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return 0, fmt.Errorf("qemu: set kill-on-close on the job object: %w", err)
	}
	return job, nil
}

// assignToJob puts a started process in job. QEMU runs for a moment before this; it starts
// no child processes in that time, so nothing escapes the job.
func assignToJob(job windows.Handle, pid int) error {
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		return fmt.Errorf("qemu: open QEMU (pid %d) to put it in a job: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(job, h); err != nil {
		return fmt.Errorf("qemu: put QEMU (pid %d) in a kill-on-close job: %w", pid, err)
	}
	return nil
}
