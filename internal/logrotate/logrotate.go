// Package logrotate keeps the last few generations of a log file: path is the current one,
// path.1 the one before, up to path.N. The host rotates the console and host-agent logs at
// each boot, so a crash's evidence survives the next start and an old boot's panic is never
// read as today's.
package logrotate

import (
	"errors"
	"fmt"
	"os"
)

// Rotate shifts path to path.1, path.1 to path.2 and so on, dropping path.keep; a missing
// generation is skipped. Afterwards path does not exist.
func Rotate(path string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("logrotate %s: keep %d: want at least 1", path, keep)
	}
	if err := os.Remove(Generation(path, keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logrotate: %w", err)
	}
	for g := keep - 1; g >= 0; g-- {
		err := os.Rename(Generation(path, g), Generation(path, g+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logrotate: %w", err)
		}
	}
	return nil
}

// Generation is the file of the boot n boots ago (0: the current one).
func Generation(path string, n int) string {
	if n == 0 {
		return path
	}
	return fmt.Sprintf("%s.%d", path, n)
}
