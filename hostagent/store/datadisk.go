package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// CheckDataDisk refuses to boot a data disk that cannot be the one create made: missing,
// empty, or smaller than the configured size (truncated, or replaced by another file). The
// guest would refuse it after booting, or worse, format what it finds. A disk larger than the
// config is accepted: growing a raw disk is how it is resized, and shrinking never happens,
// so a larger file is a grown disk, not a foreign one. The file is only read (stat), never
// touched.
func (m *Machine) CheckDataDisk(c *Config) error {
	path := m.DataDisk()
	want := int64(c.DiskGiB) << 30
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("machine %q: data disk %s is missing: restore it from a backup, or remove the machine with `machine rm %s` and create it again (its images and volumes are gone)", m.Name, path, m.Name)
	case err != nil:
		return fmt.Errorf("machine %q: data disk: %w", m.Name, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("machine %q: data disk %s is not a regular file: put the machine's disk image back there", m.Name, path)
	case fi.Size() == 0:
		return fmt.Errorf("machine %q: data disk %s is empty (0 bytes), not the %d GiB disk it was made as: restore it from a backup, or remove the machine with `machine rm %s` and create it again; machine has not touched the file", m.Name, path, c.DiskGiB, m.Name)
	case fi.Size() < want:
		return fmt.Errorf("machine %q: data disk %s is %d bytes, smaller than the %d GiB it was made as (truncated or replaced): restore it from a backup, or remove the machine with `machine rm %s`; machine has not touched the file", m.Name, path, fi.Size(), c.DiskGiB, m.Name)
	}
	return nil
}
