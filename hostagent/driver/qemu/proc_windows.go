package qemu

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
)

// stillActive is STILL_ACTIVE, the exit code of a process that has not exited.
const stillActive = 259

// processStart is the process's creation time (100 ns units since 1601) from Windows.
func processStart(pid int) (string, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return "", errGone // no such process
	}
	if err != nil {
		return "", fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	if code != stillActive {
		return "", errGone
	}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	return fmt.Sprint(created.Nanoseconds()), nil
}
