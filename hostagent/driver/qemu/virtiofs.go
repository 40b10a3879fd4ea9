package qemu

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvVirtiofsd names the virtiofsd binary that serves shares on a Linux host, or "none" to
// serve them with QEMU's own 9p server.
const EnvVirtiofsd = "MACHINE_VIRTIOFSD"

// virtiofsdDirs are where virtiofsd is installed outside PATH: distributions' places, then
// /usr/local/libexec (scripts/install-deps.sh puts one there on hosts without a package).
var virtiofsdDirs = []string{"/usr/libexec/virtiofsd", "/usr/local/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd", "/usr/lib/virtiofsd"}

// isRustVirtiofsd reports whether `virtiofsd --version` printed the Rust daemon's banner
// ("virtiofsd 1.13.2"). QEMU up to 7.2 shipped an older C daemon with other options
// ("virtiofsd version 7.2.22 (...)"), which this driver does not drive.
func isRustVirtiofsd(version string) bool {
	f := strings.Fields(version)
	return len(f) >= 2 && f[0] == "virtiofsd" && f[1] != "" && f[1][0] >= '0' && f[1][0] <= '9'
}

// locateVirtiofsd picks virtiofsd for the shares, or returns "" and why the shares stay on
// 9p. virtiofs is much faster than 9p for the metadata work bind mounts do (a walk, a build),
// but virtiofsd exists only on Linux and must run as root (it creates files as any user).
// Under emulation (TCG) it is not used unless $MACHINE_VIRTIOFSD names it: measured here,
// its metadata figures match 9p's (every request costs an emulated round trip either way)
// and its shared guest RAM gets no transparent huge pages, which cost 1-2 s of boot.
// version runs `path --version`. An explicit $MACHINE_VIRTIOFSD that is not the Rust
// virtiofsd is an error, not a silent fallback.
func locateVirtiofsd(goos, accel string, euid int, getenv func(string) string, lookPath func(string) (string, error), isFile func(string) bool, version func(string) string) (path, why string, err error) {
	v := getenv(EnvVirtiofsd)
	switch {
	case goos != "linux":
		return "", "virtiofsd runs only on Linux hosts", nil
	case v == "none":
		return "", EnvVirtiofsd + "=none", nil
	case v != "":
		if !isFile(v) {
			return "", "", fmt.Errorf("qemu: %s=%s is not a file: point it at virtiofsd, or set it to none for 9p shares", EnvVirtiofsd, v)
		}
		if out := version(v); !isRustVirtiofsd(out) {
			return "", "", fmt.Errorf("qemu: %s=%s is not the Rust virtiofsd (its --version said %q): point it at virtiofsd 1.x, or set it to none for 9p shares", EnvVirtiofsd, v, strings.TrimSpace(out))
		}
		return v, "", nil
	case accel == AccelTCG:
		return "", "under emulation (TCG) 9p is as fast and keeps guest RAM in huge pages; set " + EnvVirtiofsd + " to use virtiofsd anyway", nil
	case euid != 0:
		return "", "virtiofsd needs root; shares use QEMU's 9p", nil
	}
	if p, old := findRustVirtiofsd(lookPath, isFile, version); p != "" {
		return p, "", nil
	} else if len(old) > 0 {
		return "", "only the legacy C virtiofsd (" + strings.Join(old, ", ") + "); shares use QEMU's 9p (install virtiofsd 1.x for faster shares)", nil
	}
	return "", "no virtiofsd (PATH, " + strings.Join(virtiofsdDirs, ", ") + "); shares use QEMU's 9p (install virtiofsd for faster shares)", nil
}

// findRustVirtiofsd returns the first Rust virtiofsd in PATH or virtiofsdDirs, and the
// other virtiofsd binaries it passed over (QEMU's C one).
func findRustVirtiofsd(lookPath func(string) (string, error), isFile func(string) bool, version func(string) string) (path string, old []string) {
	var cands []string
	if p, err := lookPath("virtiofsd"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range virtiofsdDirs {
		if isFile(p) {
			cands = append(cands, p)
		}
	}
	for _, p := range cands {
		if isRustVirtiofsd(version(p)) {
			return p, old
		}
		old = append(old, p)
	}
	return "", old
}

// FindVirtiofsd is the host's Rust virtiofsd as the driver would pick it, whatever the
// accelerator and user, or "" (tests and benchmarks name it in MACHINE_VIRTIOFSD).
func FindVirtiofsd() string {
	p, _ := findRustVirtiofsd(exec.LookPath, isFile, virtiofsdVersion)
	return p
}

// virtiofsdArgs is virtiofsd's argv (without the binary) for one share.
//
// --cache=never keeps the coherence bind mounts promise: a file the host writes is seen in
// the guest at once and the other way round (no attribute or entry timeouts, no page cache
// kept across opens). --allow-mmap still lets programs map shared files (databases, build
// tools), as 9p's cache=mmap did. The namespace sandbox confines virtiofsd to the folder.
func virtiofsdArgs(socket, dir string, readOnly bool) []string {
	a := []string{"--socket-path=" + socket, "--shared-dir=" + dir, "--cache=never", "--allow-mmap", "--sandbox=namespace", "--inode-file-handles=prefer"}
	if readOnly {
		a = append(a, "--readonly")
	}
	return a
}

// fsSocketPath is the vhost-user socket of share i's virtiofsd.
func fsSocketPath(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("fs%d.sock", i)) }
