package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults for new machines.
const (
	DefaultCPUs      = 2
	DefaultMemoryMiB = 2048
	DefaultDiskGiB   = 64
	minMemoryMiB     = 512
	minDiskGiB       = 4
	maxDiskGiB       = 4096
)

// Host is what resources are checked against.
type Host struct {
	CPUs      int
	MemoryMiB int // 0 when unknown
}

// Validate checks a config read from disk, which the user may have edited by hand, so a
// machine is never shown or booted with settings create would have refused.
func (c *Config) Validate() error {
	var errs []error
	if c.CPUs < 1 {
		errs = append(errs, fmt.Errorf("cpus %d: must be at least 1", c.CPUs))
	}
	if c.MemoryMiB < minMemoryMiB {
		errs = append(errs, fmt.Errorf("memory_mib %d: must be at least %d", c.MemoryMiB, minMemoryMiB))
	}
	if c.DiskGiB < minDiskGiB || c.DiskGiB > maxDiskGiB {
		errs = append(errs, fmt.Errorf("disk_gib %d: must be %d to %d", c.DiskGiB, minDiskGiB, maxDiskGiB))
	}
	if c.Arch != "amd64" && c.Arch != "arm64" {
		errs = append(errs, fmt.Errorf("arch %q: must be amd64 or arm64", c.Arch))
	}
	return errors.Join(errs...)
}

// ValidateResources checks CPU, memory and disk against the host, naming the setting and
// what the user can do.
func ValidateResources(c *Config, h Host) error {
	var errs []error
	if c.CPUs < 1 || c.CPUs > h.CPUs {
		errs = append(errs, fmt.Errorf("--cpus %d: this host has %d CPUs; choose 1 to %d", c.CPUs, h.CPUs, h.CPUs))
	}
	if c.MemoryMiB < minMemoryMiB {
		errs = append(errs, fmt.Errorf("--memory %dMiB: Docker needs at least %dMiB", c.MemoryMiB, minMemoryMiB))
	} else if h.MemoryMiB > 0 && c.MemoryMiB > h.MemoryMiB*3/4 {
		errs = append(errs, fmt.Errorf("--memory %dMiB: this host has %dMiB; leave it a quarter (at most %dMiB)", c.MemoryMiB, h.MemoryMiB, h.MemoryMiB*3/4))
	}
	if c.DiskGiB < minDiskGiB || c.DiskGiB > maxDiskGiB {
		errs = append(errs, fmt.Errorf("--disk %dGiB: choose %d to %d GiB (the disk is sparse: it uses only what is written)", c.DiskGiB, minDiskGiB, maxDiskGiB))
	}
	if c.Arch != "amd64" && c.Arch != "arm64" {
		errs = append(errs, fmt.Errorf("--arch %q: choose amd64 or arm64", c.Arch))
	}
	return errors.Join(errs...)
}

var sizeRE = regexp.MustCompile(`^(\d+)\s*([KMGT]?)(I?B)?$`)

// ParseSize parses "2048", "2048M", "2G", "2GiB" or "512MB" into bytes. Binary units are
// used throughout (1G = 1024 MiB), as Docker does for --memory.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("size %q: use a number with an optional unit, like 2048M, 4G or 64GiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m[2]]
	if err != nil || n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q is too large: use a size like 2048M, 4G or 64GiB", s)
	}
	return n << shift, nil
}

// ParseWholeSize parses s like ParseSize and insists on a whole number of units (1<<shift
// bytes, named unit, example a valid size): memory is given to the VM in MiB and the disk
// made in GiB, so any other size would be silently rounded down (600K was read as 0MiB).
func ParseWholeSize(s string, shift uint, unit, example string) (int, error) {
	n, err := ParseSize(s)
	if err != nil {
		return 0, err
	}
	if n%(1<<shift) != 0 {
		return 0, fmt.Errorf("size %q is not a whole number of %s: use a size like %s", s, unit, example)
	}
	return int(n >> shift), nil
}

// Create makes a new machine: its folder, a copy of the image (hard links when the image is
// on the same filesystem), a sparse data disk and the config. If any step fails, the new
// folder is removed: it holds nothing but what this call made.
func (s *Store) Create(c *Config, imageDir string) (_ *Machine, err error) {
	m, err := s.Machine(c.Name)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(m.Dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("machine %q: %w (remove it with `machine rm %s` or pick another name)", c.Name, ErrExists, c.Name)
		}
		return nil, fmt.Errorf("machine %q: %w", c.Name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(m.Dir)
		}
	}()
	if err := copyImage(imageDir, m.ImageDir()); err != nil {
		return nil, fmt.Errorf("machine %q: copy image from %s: %w", c.Name, imageDir, err)
	}
	if err := createSparse(m.DataDisk(), int64(c.DiskGiB)<<30); err != nil {
		return nil, fmt.Errorf("machine %q: data disk: %w", c.Name, err)
	}
	c.ImageSource = imageDir
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	if err := m.SaveConfig(c); err != nil {
		return nil, fmt.Errorf("machine %q: %w", c.Name, err)
	}
	return m, nil
}

func createSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyImage copies the regular files of src into a new folder dst, through a temporary
// folder renamed into place.
func copyImage(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	n := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := linkOrCopy(filepath.Join(src, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no image files in %s", src)
	}
	return os.Rename(tmp, dst)
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
