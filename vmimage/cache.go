package vmimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/machine-run/machine/guestagent/api"
)

// CacheDir is where images and rootfs tarballs are cached: $MACHINE_CACHE if set, else
// os.UserCacheDir()/machine.
func CacheDir() (string, error) {
	if d := os.Getenv("MACHINE_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("image cache: %w (set MACHINE_CACHE)", err)
	}
	return filepath.Join(d, "machine"), nil
}

// imagesDir is <cache>/images/<arch>; it holds one directory per cache key and "latest".
func imagesDir(cache, arch string) string { return filepath.Join(cache, "images", arch) }

// rootfsTarball is the cached mmdebstrap output for a rootfs key.
func rootfsTarball(cache, arch, key string) string {
	return filepath.Join(cache, "rootfs", arch, key+".tar")
}

// kernelTarball is the cached extract of the kernel package for a rootfs key.
func kernelTarball(cache, arch, key string) string {
	return filepath.Join(cache, "rootfs", arch, key+"-kernel.tar")
}

// Latest returns the directory of the newest image built for arch, after Load has checked it.
func Latest(arch string) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	return latestIn(cache, arch)
}

func latestIn(cache, arch string) (string, error) {
	link := filepath.Join(imagesDir(cache, arch), "latest")
	target, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w for %s in %s: run `machine image build --arch %s`", ErrNoImage, arch, filepath.Dir(link), arch)
	}
	if err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	dir := target
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(link), target)
	}
	if _, err := Load(dir); err != nil {
		return "", fmt.Errorf("latest %s image: %w: run `machine image build --arch %s`", arch, err, arch)
	}
	return dir, nil
}

// setLatest points <images>/latest at the directory named key, replacing the link atomically.
func setLatest(images, key string) error {
	tmp := filepath.Join(images, ".latest.tmp-"+key)
	os.Remove(tmp)
	if err := os.Symlink(key, tmp); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(images, "latest")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("image cache: %w", err)
	}
	return nil
}

// rootfsInputs are everything the mmdebstrap tarball depends on.
type rootfsInputs struct {
	Recipe       string   `json:"recipe"`
	Suite        string   `json:"suite"`
	Arch         string   `json:"arch"`
	Packages     []string `json:"packages"`
	Kernel       string   `json:"kernel"`
	DpkgExcludes []string `json:"dpkg_excludes"`
}

// imageInputs are everything the final image depends on beyond the rootfs tarball.
type imageInputs struct {
	Recipe           string   `json:"recipe"`
	RootfsKey        string   `json:"rootfs_key"`
	AgentSHA256      string   `json:"agent_sha256"`
	Cmdline          string   `json:"cmdline"`
	InitramfsModules []string `json:"initramfs_modules"`
	RootModules      []string `json:"root_modules"`
}

func newRootfsInputs(arch string) rootfsInputs {
	pkgs := slices.Clone(Packages)
	slices.Sort(pkgs)
	return rootfsInputs{Recipe: rootfsRecipe, Suite: Suite, Arch: arch, Packages: pkgs, Kernel: kernelPackage(arch), DpkgExcludes: dpkgExcludes}
}

func newImageInputs(rootfsKey, agentSHA256 string) imageInputs {
	return imageInputs{
		Recipe: imageRecipe, RootfsKey: rootfsKey, AgentSHA256: agentSHA256, Cmdline: Cmdline,
		InitramfsModules: api.InitramfsModules, RootModules: api.RootModules,
	}
}

// cacheKey hashes the canonical JSON of v; 32 hex digits are plenty to name a build.
func cacheKey(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings always marshal
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}
