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
	// ErrSystemPath: the guest path would be mounted over the guest's own system folders.
	ErrSystemPath = errors.New("would hide the guest's own system folders")
)

// systemPaths are guest folders the guest itself needs. A share may not be one of them nor
// a parent of one (so "/" is refused). The deep ones also refuse anything inside them.
var systemPaths = map[string]bool{ // path -> deep
	"/tmp": false, "/usr": false, "/var": false, "/var/lib": false, "/mnt": false,
	"/bin": true, "/sbin": true, "/lib": true, "/lib32": true, "/lib64": true, "/libx32": true,
	"/boot": true, "/dev": true, "/etc": true, "/proc": true, "/run": true, "/sys": true,
	"/usr/bin": true, "/usr/sbin": true, "/usr/lib": true, "/usr/lib64": true, "/usr/libexec": true,
	"/var/run": true, "/var/lib/docker": true, "/var/lib/containerd": true, "/var/lib/machine": true,
	"/mnt/data": true, "/mnt/.machine": true,
}

// checkSystem refuses a clean guest path that is, contains, or (for the deep ones) lies
// inside a guest system folder. /Users/x, /private/tmp/x, /home/x, /root and /c/Users/x pass.
func checkSystem(hostPath, gp string) error {
	for sp, deep := range systemPaths {
		if gp == sp || gp == "/" || strings.HasPrefix(sp, gp+"/") || deep && strings.HasPrefix(gp, sp+"/") {
			return fmt.Errorf("share %q: guest path %s %w (%s); share a folder of yours instead, such as your home or a project folder", hostPath, gp, ErrSystemPath, sp)
		}
	}
	return nil
}

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
// path is used as it is, cleaned. A path that would hide the guest's system folders is
// refused with ErrSystemPath.
func CheckGuestPath(goos, hostPath string) (string, error) {
	if goos != "windows" {
		if !strings.HasPrefix(hostPath, "/") {
			return "", fmt.Errorf("share %q: %w", hostPath, ErrNotAbsolute)
		}
		gp := path.Clean(hostPath)
		if err := checkSystem(hostPath, gp); err != nil {
			return "", err
		}
		return gp, nil
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
	gp := path.Clean("/" + drive + p[2:])
	if err := checkSystem(hostPath, gp); err != nil { // /x/... is no system folder today
		return "", err
	}
	return gp, nil
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

// Default returns the folders shared when the user configures none: the home (profile)
// folder, at its guest path, writable. It returns nil when home has no guest path (empty,
// a network home folder on Windows, or a system folder such as / for a service account).
func Default(goos, home string) []driver.Share {
	gp := GuestPath(goos, home)
	if gp == "" {
		return nil
	}
	return []driver.Share{{Tag: HomeTag, HostPath: home, GuestPath: gp}}
}

// DefaultPaths are the host folders a new machine shares unless told otherwise: the home
// folder, and on macOS the temporary folders (/private/tmp, which /tmp links to, and
// /var/folders, where $TMPDIR is), as Docker Desktop shares them, so `docker run -v
// "$(mktemp -d)":/x` works.
func DefaultPaths(goos, home string) []string {
	var out []string
	if home != "" {
		out = append(out, home)
	}
	if goos == "darwin" {
		out = append(out, "/private/tmp", "/var/folders")
	}
	return out
}
