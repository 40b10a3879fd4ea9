package qemu

import (
	"errors"
	"fmt"
	"strings"
)

// EnvQEMU names QEMU's binary or the folder holding it, ahead of PATH.
const EnvQEMU = "MACHINE_QEMU"

// whpxHint tells Windows users how to turn on the hypervisor QEMU accelerates with.
const whpxHint = `enable the "Windows Hypervisor Platform" feature for hardware acceleration ` +
	`(PowerShell as administrator: Enable-WindowsOptionalFeature -Online -FeatureName HypervisorPlatform, then reboot)`

// locateQEMU finds the QEMU binary bin: $MACHINE_QEMU (the binary itself or its folder), then
// PATH, then on Windows %ProgramFiles%\qemu where QEMU's installer puts it. The OS and the
// lookups are parameters so every OS's rules are tested anywhere.
func locateQEMU(goos, bin string, getenv func(string) string, lookPath func(string) (string, error), isFile func(string) bool) (string, error) {
	if v := getenv(EnvQEMU); v != "" {
		if isFile(v) {
			return v, nil
		}
		if p := joinFor(goos, v, bin); isFile(p) {
			return p, nil
		}
		return "", fmt.Errorf("qemu: %s=%s: neither %s nor a folder holding it", EnvQEMU, v, bin)
	}
	p, err := lookPath(bin)
	if err == nil {
		return p, nil
	}
	if goos != "windows" {
		return "", fmt.Errorf("qemu: %s not found in PATH: install QEMU (Debian/Ubuntu: apt-get install qemu-system-x86 qemu-system-arm; macOS: brew install qemu) or set %s to it: %w", bin, EnvQEMU, err)
	}
	dir := `C:\Program Files\qemu`
	if pf := getenv("ProgramFiles"); pf != "" {
		dir = joinFor(goos, pf, "qemu")
	}
	if p := joinFor(goos, dir, bin); isFile(p) {
		return p, nil
	}
	return "", errors.New("qemu: " + bin + " not found in PATH or " + dir + ": install QEMU for Windows there (or set " +
		EnvQEMU + " to its folder), and " + whpxHint)
}

// joinFor joins a folder and a file name with goos's separator.
func joinFor(goos, dir, name string) string {
	sep := "/"
	if goos == "windows" {
		sep = `\`
	}
	return strings.TrimRight(dir, sep) + sep + name
}
