//go:build darwin

package vz

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// hostMacOSVersion reads the product version ("13.6.1"). A process the system treats as
// built for an old SDK is told "10.16" for any macOS 11 or newer; sw_vers with
// SYSTEM_VERSION_COMPAT=0 then tells the real one.
func hostMacOSVersion() (string, error) {
	v, err := unix.Sysctl("kern.osproductversion")
	if err == nil && v != "10.16" {
		return v, nil
	}
	cmd := exec.Command("/usr/bin/sw_vers", "-productVersion")
	cmd.Env = append(os.Environ(), "SYSTEM_VERSION_COMPAT=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, serr := cmd.Output()
	if serr != nil {
		if err != nil {
			return "", fmt.Errorf("sysctl kern.osproductversion: %v; sw_vers -productVersion: %v: %s", err, serr, bytes.TrimSpace(stderr.Bytes()))
		}
		return v, nil
	}
	return string(bytes.TrimSpace(out)), nil
}
