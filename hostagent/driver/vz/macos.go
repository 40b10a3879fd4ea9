package vz

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// MinMacOS is the oldest macOS this driver supports: 13 (Ventura). virtiofs shares, the
// disk caching and synchronization modes and stopping a VM need 12; Rosetta for Linux needs
// 13, and Lima, the most used vz-based tool, requires 13 as well. Supporting 12 would mean a
// driver whose Rosetta and some fixes silently vanish; nothing here could test it.
var MinMacOS = MacOSVersion{Major: 13}

// MacOSVersion is a macOS product version (13.6.1).
type MacOSVersion struct{ Major, Minor, Patch int }

func (v MacOSVersion) String() string {
	s := fmt.Sprintf("%d.%d", v.Major, v.Minor)
	if v.Patch != 0 {
		s += fmt.Sprintf(".%d", v.Patch)
	}
	return s
}

// Less reports whether v is older than w.
func (v MacOSVersion) Less(w MacOSVersion) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// ParseMacOSVersion reads "13", "13.6" or "13.6.1" (what sw_vers -productVersion and the
// kern.osproductversion sysctl print).
func ParseMacOSVersion(s string) (MacOSVersion, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) > 3 {
		return MacOSVersion{}, fmt.Errorf("macOS version %q: want major[.minor[.patch]]", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || (i == 0 && v == 0) {
			return MacOSVersion{}, fmt.Errorf("macOS version %q: want major[.minor[.patch]]", s)
		}
		n[i] = v
	}
	return MacOSVersion{n[0], n[1], n[2]}, nil
}

// ErrHostUnsupported is returned by CheckHost when this host cannot run the vz driver.
var ErrHostUnsupported = errors.New("the vz driver cannot run on this host")

// CheckHost reports whether this host can run the vz driver: macOS MinMacOS or newer. The
// error says what to use instead.
func CheckHost() error { return checkHost(runtime.GOOS, hostMacOSVersion) }

func checkHost(goos string, version func() (string, error)) error {
	if goos != "darwin" {
		return fmt.Errorf("%w: it needs macOS %s or newer and this host runs %s; use --driver qemu", ErrHostUnsupported, MinMacOS, goos)
	}
	s, err := version()
	if err != nil {
		return fmt.Errorf("%w: cannot read the macOS version: %v; use --driver qemu", ErrHostUnsupported, err)
	}
	return CheckMacOS(s)
}

// CheckMacOS checks a macOS product version against MinMacOS.
func CheckMacOS(version string) error {
	v, err := ParseMacOSVersion(version)
	if err != nil {
		return fmt.Errorf("%w: %v; use --driver qemu", ErrHostUnsupported, err)
	}
	if v.Less(MinMacOS) {
		return fmt.Errorf("%w: it needs macOS %s or newer (virtiofs shares, disk sync modes, Rosetta) and this Mac runs %s; update macOS, or use --driver qemu", ErrHostUnsupported, MinMacOS, v)
	}
	return nil
}
