// Package store owns $MACHINE_HOME: one private folder per machine holding its config
// (written atomically), its image files, the sparse data disk, logs, the host agent's pid and
// lock files and its sockets. It validates names and sizes, and never deletes or overwrites
// user data on an error path.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/machine-run/machine/internal/atomicfile"
)

// ErrNotFound is returned for a machine that does not exist.
var ErrNotFound = errors.New("machine does not exist")

// ErrExists is returned when creating a machine whose folder already exists.
var ErrExists = errors.New("machine already exists")

// ErrBroken is returned for a machine whose config cannot be read or is invalid.
var ErrBroken = errors.New("the machine is broken")

// joinLine puts a joined error on one line.
func joinLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}

// DefaultName is the machine commands use when no name is given.
const DefaultName = "default"

// Store is a $MACHINE_HOME folder.
type Store struct {
	Home string
}

// Open returns the store at $MACHINE_HOME, or ~/.machine, creating it (0700) if needed.
func Open() (*Store, error) {
	home := os.Getenv("MACHINE_HOME")
	if home == "" {
		h, err := defaultHome()
		if err != nil {
			return nil, err
		}
		home = h
	}
	home, err := filepath.Abs(home)
	if err != nil {
		return nil, fmt.Errorf("MACHINE_HOME: %w", err)
	}
	_, statErr := os.Stat(home)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("machine home %s: %w", home, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// Only a new home is made private: the user may have chosen an existing folder's
		// permissions on purpose. On failure the empty folder goes, so the next run retries.
		if err := protectDir(home); err != nil {
			os.Remove(home)
			return nil, fmt.Errorf("machine home %s: %w (set MACHINE_HOME to a folder you own)", home, err)
		}
	}
	return &Store{Home: home}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// ValidateName accepts lower-case letters, digits and inner dashes, up to 32 characters: the
// name becomes a folder, a hostname and part of a docker context name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid machine name %q: use 1-32 lower-case letters, digits and dashes, starting and ending with a letter or digit", name)
	}
	return nil
}

// Config is a machine's settings. JSON field names are an API: they appear in
// `machine status --format json`.
type Config struct {
	Name      string    `json:"name"`
	Arch      string    `json:"arch"`
	CPUs      int       `json:"cpus"`
	MemoryMiB int       `json:"memory_mib"`
	DiskGiB   int       `json:"disk_gib"`
	Driver    string    `json:"driver"`
	Created   time.Time `json:"created"`
	// ImageSource is where the image files were copied from, for diagnostics.
	ImageSource string `json:"image_source"`
	// ImageDigest is the OCI manifest digest of the image the machine boots (a built image
	// has one too: see vmimage/oci.Digest); ImageRef the reference it was pulled by, if any.
	ImageDigest string `json:"image_digest,omitempty"`
	ImageRef    string `json:"image_ref,omitempty"`
	// Upgrade is an image upgrade waiting for its first good boot, or one rolled back.
	Upgrade *Upgrade `json:"upgrade,omitempty"`
	// PublishAllInterfaces exposes wildcard-published container ports on all host
	// interfaces instead of loopback only.
	PublishAllInterfaces bool `json:"publish_all_interfaces"`
	// QEMUHostForwards are QEMU hostfwd rules, for benchmarks that compare QEMU's own port
	// forwarding with machine's (set with the hidden `create --qemu-hostfwd`).
	QEMUHostForwards []string `json:"qemu_hostfwd,omitempty"`
	// Shares are host folders mounted in the guest at the same path (Windows: /c/...), so
	// `docker run -v "$PWD":/src` works. New machines share the user's home folder.
	Shares []string `json:"shares"`
	// ReadOnlyShares are the Shares mounted read-only (`machine set --share PATH:ro`).
	ReadOnlyShares []string `json:"read_only_shares,omitempty"`
	// Rosetta runs amd64 Linux programs in an arm64 machine through Apple's Rosetta (vz on
	// Apple silicon; set with `create --rosetta`).
	Rosetta bool `json:"rosetta"`
	// RosettaStandIn is a host folder holding an x86_64 interpreter as "rosetta", shared
	// with a QEMU guest in Rosetta's place. Only tests set it (hidden `--rosetta-stand-in`).
	RosettaStandIn string `json:"rosetta_stand_in,omitempty"`
	// AutoPause, AutoPauseAfterSeconds: see AutoPauseIdle.
	AutoPause             *bool `json:"auto_pause,omitempty"`
	AutoPauseAfterSeconds int   `json:"auto_pause_after_seconds,omitempty"`
	// DisableHostAccess turns host.docker.internal off: containers cannot reach the host's
	// loopback (set with `create --host-access=false`; on by default, as on Docker Desktop).
	DisableHostAccess bool `json:"disable_host_access,omitempty"`
}

// Machine is one machine's folder.
type Machine struct {
	Name string
	Dir  string
}

// Machine returns the folder of a machine, validating its name. It need not exist.
func (s *Store) Machine(name string) (*Machine, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	return &Machine{Name: name, Dir: filepath.Join(s.Home, name)}, nil
}

// Paths inside a machine folder.
func (m *Machine) ConfigPath() string    { return filepath.Join(m.Dir, "config.json") }
func (m *Machine) ImageDir() string      { return filepath.Join(m.Dir, "image") }
func (m *Machine) DataDisk() string      { return filepath.Join(m.Dir, "data.raw") }
func (m *Machine) SerialLog() string     { return filepath.Join(m.Dir, "serial.log") }
func (m *Machine) AgentLog() string      { return filepath.Join(m.Dir, "hostagent.log") }
func (m *Machine) EventsPath() string    { return filepath.Join(m.Dir, "events.jsonl") }
func (m *Machine) PidFile() string       { return filepath.Join(m.Dir, "hostagent.pid") }
func (m *Machine) AgentLock() string     { return filepath.Join(m.Dir, "hostagent.lock") }
func (m *Machine) StartLock() string     { return filepath.Join(m.Dir, "start.lock") }
func (m *Machine) ControlSocket() string { return filepath.Join(m.Dir, "hostagent.sock") }
func (m *Machine) DockerSocket() string  { return filepath.Join(m.Dir, "docker.sock") }

// Exists reports whether the machine has a config.
func (m *Machine) Exists() bool {
	_, err := os.Stat(m.ConfigPath())
	return err == nil
}

// LoadConfig reads the machine's config.
func (m *Machine) LoadConfig() (*Config, error) {
	b, err := os.ReadFile(m.ConfigPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("machine %q: %w (create it with `machine create %s`)", m.Name, ErrNotFound, m.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("machine %q: %w", m.Name, err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("machine %q: config %s is corrupt: %w (%w; remove the machine with `machine rm --force %s` or restore the file)", m.Name, m.ConfigPath(), err, ErrBroken, m.Name)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("machine %q: config %s: %w (%w; fix the file, or remove the machine with `machine rm --force %s`)", m.Name, m.ConfigPath(), joinLine(err), ErrBroken, m.Name)
	}
	return &c, nil
}

// SaveConfig writes the config atomically.
func (m *Machine) SaveConfig(c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(m.ConfigPath(), append(b, '\n'), 0o600)
}

// List returns the names of all machines, sorted.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.Home)
	if err != nil {
		return nil, fmt.Errorf("machine home %s: %w", s.Home, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		if m := (&Machine{Name: e.Name(), Dir: filepath.Join(s.Home, e.Name())}); m.Exists() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
