package vmimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/machine-run/machine/internal/atomicfile"
)

// File roles in a manifest.
const (
	RoleKernel    = "kernel"
	RoleInitramfs = "initramfs"
	RoleRoot      = "root"
)

// ManifestName is the manifest's file name inside an image directory.
const ManifestName = "manifest.json"

// Manifest describes one built image. Its JSON field names are an API: the host agent and
// later an OCI push read them.
type Manifest struct {
	SchemaVersion int    `json:"schema_version"`
	Arch          string `json:"arch"`
	Suite         string `json:"suite"`
	KernelRelease string `json:"kernel_release"`
	// Cmdline is the kernel command line the image expects, without console/channel keys.
	Cmdline string `json:"cmdline"`
	// RootFormat is the filesystem of the root image ("squashfs") and its compression.
	RootFormat      string `json:"root_format"`
	RootCompression string `json:"root_compression"`
	// AgentVersion is the short sha256 of the guest-agent binary (also in versions.json).
	AgentVersion string `json:"agent_version"`
	// Engine holds the upstream versions of dockerd, containerd and runc.
	Engine EngineVersions `json:"engine"`
	// Packages maps every installed Debian package to its version.
	Packages map[string]string `json:"packages"`
	// CacheKey identifies the build inputs; RootfsKey those of the mmdebstrap tarball.
	CacheKey  string `json:"cache_key"`
	RootfsKey string `json:"rootfs_key"`
	// InitramfsModules and RootModules are the module files shipped, in load order.
	InitramfsModules []string `json:"initramfs_modules"`
	RootModules      []string `json:"root_modules"`
	Files            []File   `json:"files"`
}

// EngineVersions are the container engine's versions inside the image.
type EngineVersions struct {
	Dockerd    string `json:"dockerd"`
	Containerd string `json:"containerd"`
	Runc       string `json:"runc"`
}

// File is one file of an image directory.
type File struct {
	Role   string `json:"role"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Load reads dir/manifest.json and checks that every file it names exists with the size it
// records. It does not hash them: see Verify.
func Load(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", dir, err)
	}
	if m.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("image %s: manifest schema %d, this build reads %d: rebuild with `machine image build`",
			dir, m.SchemaVersion, SchemaVersion)
	}
	for _, role := range []string{RoleKernel, RoleInitramfs, RoleRoot} {
		if m.file(role) == nil {
			return nil, fmt.Errorf("image %s: manifest lists no %s file", dir, role)
		}
	}
	for _, f := range m.Files {
		if f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." {
			return nil, fmt.Errorf("image %s: manifest file name %q is not a plain name", dir, f.Name)
		}
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			return nil, fmt.Errorf("image %s: %s: %w", dir, f.Role, err)
		}
		if st.Size() != f.Size {
			return nil, fmt.Errorf("image %s: %s is %d bytes, manifest says %d", dir, f.Name, st.Size(), f.Size)
		}
	}
	return &m, nil
}

// ErrChecksum is returned by Verify when a file's content does not match the manifest.
var ErrChecksum = errors.New("checksum mismatch")

// Verify hashes every file of the image in dir and compares it with the manifest.
func (m *Manifest) Verify(dir string) error {
	for _, f := range m.Files {
		sum, _, err := hashFile(filepath.Join(dir, f.Name))
		if err != nil {
			return fmt.Errorf("image %s: %w", dir, err)
		}
		if sum != f.SHA256 {
			return fmt.Errorf("image %s: %s: %w (sha256 %s, manifest says %s)", dir, f.Name, ErrChecksum, sum, f.SHA256)
		}
	}
	return nil
}

// Path returns the absolute path of the file with role (RoleKernel, RoleInitramfs, RoleRoot)
// in the image directory dir, or "" if the manifest has none.
func (m *Manifest) Path(dir, role string) string {
	f := m.file(role)
	if f == nil {
		return ""
	}
	return filepath.Join(dir, f.Name)
}

func (m *Manifest) file(role string) *File {
	for i := range m.Files {
		if m.Files[i].Role == role {
			return &m.Files[i]
		}
	}
	return nil
}

// addFile hashes dir/name and records it under role.
func (m *Manifest) addFile(dir, role, name string) error {
	sum, size, err := hashFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	m.Files = append(m.Files, File{Role: role, Name: name, Size: size, SHA256: sum})
	return nil
}

// write stores the manifest in dir atomically.
func (m *Manifest) write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644)
}

func hashFile(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
