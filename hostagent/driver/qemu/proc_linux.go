package qemu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// processStart is the boot's id and the process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat): unique for the host's uptime, and across reboots.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return "", errGone
	}
	if err != nil {
		return "", err
	}
	state, ticks, err := parseStat(string(b))
	if err != nil {
		return "", fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	if state == "Z" || state == "X" {
		return "", errGone // exited; its parent has not reaped it yet
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot)) + ":" + ticks, nil
}

// parseStat returns the state and start time fields of a /proc/PID/stat line. The command
// name before them is in parentheses and may hold spaces and parentheses.
func parseStat(s string) (state, start string, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", "", errors.New("no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return "", "", fmt.Errorf("%d fields after the command name, want at least 20", len(f))
	}
	return f[0], f[19], nil
}
