package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// RosettaBinary is the interpreter's file name inside the Rosetta share.
const RosettaBinary = "rosetta"

// SetupRosetta makes x86_64 programs run through the translator the host shares under tag:
// it mounts the share read-only on mountPoint (virtiofs, as Apple's framework shares
// Rosetta; else 9p, as QEMU shares a stand-in), mounts binfmt_misc if needed and registers
// mountPoint/rosetta for x86_64 ELF programs. It is idempotent. detail says what it did.
func SetupRosetta(tag, mountPoint string) (detail string, err error) {
	interp := filepath.Join(mountPoint, RosettaBinary)
	how, err := mountRosetta(tag, mountPoint, interp)
	if err != nil {
		return "", err
	}
	if err := mountBinfmt(BinfmtDir); err != nil {
		return "", err
	}
	registered, err := RegisterX86Interpreter(BinfmtDir, RosettaBinfmtName, interp)
	if err != nil {
		return "", fmt.Errorf("rosetta: %w", err)
	}
	detail = how + " " + interp
	if !registered {
		detail += " (already registered)"
	}
	return detail, nil
}

// mountRosetta mounts the share unless the interpreter is already there.
func mountRosetta(tag, mountPoint, interp string) (string, error) {
	if _, err := os.Stat(interp); err == nil {
		return "mounted", nil
	}
	if err := os.MkdirAll(mountPoint, 0o755); err != nil {
		return "", fmt.Errorf("rosetta: %w", err)
	}
	errVFS := unix.Mount(tag, mountPoint, "virtiofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, "")
	if errVFS == nil {
		return "virtiofs", checkInterp(tag, interp)
	}
	err9p := unix.Mount(tag, mountPoint, "9p", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, "trans=virtio,version=9p2000.L")
	if err9p == nil {
		return "9p", checkInterp(tag, interp)
	}
	return "", fmt.Errorf("rosetta: mount share %q on %s: virtiofs: %v; 9p: %v (is the machine's Rosetta share attached?)", tag, mountPoint, errVFS, err9p)
}

func checkInterp(tag, interp string) error {
	if _, err := os.Stat(interp); err != nil {
		return fmt.Errorf("rosetta: share %q has no %s: %w", tag, filepath.Base(interp), err)
	}
	return nil
}

// mountBinfmt mounts binfmt_misc on dir unless it is there (the binfmt_misc module must be
// loaded: it is in api.RootModules).
func mountBinfmt(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "register")); err == nil {
		return nil
	}
	err := unix.Mount("binfmt_misc", dir, "binfmt_misc", nodevExec, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("rosetta: mount binfmt_misc on %s: %w (is the binfmt_misc module loaded?)", dir, err)
	}
	return nil
}
