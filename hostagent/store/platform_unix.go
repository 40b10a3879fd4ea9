//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func defaultHome() (string, error) {
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the home folder (set MACHINE_HOME): %w", err)
	}
	return filepath.Join(h, ".machine"), nil
}

// protectDir makes sure only the user can enter dir (mode 0700); the folder is created so,
// and this only tightens one made under a lax umask or by hand.
func protectDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return os.Chmod(dir, 0o700)
}

// tryLock takes an exclusive (or shared) advisory lock on f without waiting.
func tryLock(f *os.File, shared bool) (bool, error) {
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// processAlive reports whether pid names a live process.
func processAlive(pid int) bool {
	return pid > 0 && unix.Kill(pid, 0) == nil
}
