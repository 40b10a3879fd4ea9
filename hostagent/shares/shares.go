// Package shares decides which host folders a machine shares with its guest and where they
// appear inside it. It is pure: the host OS is a parameter, so Windows rules are tested on any
// host. A Windows path C:\Users\Ann\src appears in the guest as /c/Users/Ann/src (the layout
// of Git Bash, WSL's /mnt/c minus the prefix, and Docker Desktop's bind mounts), so a path
// the user types on the host names the same folder in `docker run -v`.
package shares

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/machine-run/machine/hostagent/driver"
)

// HomeTag is the mount tag of the user's home folder.
const HomeTag = "home"

// Errors for host paths that have no guest path.
var (
	// ErrUNC: network paths (\\server\share) are not shared; map a drive letter instead.
	ErrUNC = errors.New("network (UNC) paths cannot be shared")
	// ErrNotAbsolute: relative and drive-relative paths (src, C:src, \src) are ambiguous.
	ErrNotAbsolute = errors.New("path is not absolute")
)

// GuestPath maps a host folder to its guest path on host OS goos, or returns "" when it has
// none; CheckGuestPath says why.
func GuestPath(goos, hostPath string) string {
	p, err := CheckGuestPath(goos, hostPath)
	if err != nil {
		return ""
	}
	return p
}

// CheckGuestPath maps a host folder to its guest path on host OS goos. On Windows the drive
// letter becomes a lower-case top-level folder and either separator is accepted; elsewhere the
// path is used as it is.
func CheckGuestPath(goos, hostPath string) (string, error) {
	if goos != "windows" {
		if !strings.HasPrefix(hostPath, "/") {
			return "", fmt.Errorf("share %q: %w", hostPath, ErrNotAbsolute)
		}
		return hostPath, nil
	}
	p := strings.ReplaceAll(hostPath, `\`, "/")
	// Win32 file namespace prefix: \\?\C:\x is C:\x, \\?\UNC\srv\x is \\srv\x.
	if rest, ok := strings.CutPrefix(p, "//?/"); ok {
		if len(rest) >= 4 && strings.EqualFold(rest[:4], "UNC/") {
			return "", fmt.Errorf("share %q: %w", hostPath, ErrUNC)
		}
		p = rest
	}
	if strings.HasPrefix(p, "//") {
		return "", fmt.Errorf("share %q: %w", hostPath, ErrUNC)
	}
	if len(p) < 3 || !isLetter(p[0]) || p[1] != ':' || p[2] != '/' {
		return "", fmt.Errorf("share %q: %w (use a full path such as C:\\Users\\you)", hostPath, ErrNotAbsolute)
	}
	drive := strings.ToLower(p[:1])
	return path.Clean("/" + drive + p[2:]), nil
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

// Default returns the folders shared when the user configures none: the home (profile)
// folder, at its guest path, writable. It returns nil when home has no guest path (empty,
// or a network home folder on Windows).
func Default(goos, home string) []driver.Share {
	gp := GuestPath(goos, home)
	if gp == "" || gp == "/" {
		return nil
	}
	return []driver.Share{{Tag: HomeTag, HostPath: home, GuestPath: gp}}
}
