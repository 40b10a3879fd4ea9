package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/vmimage"
	"github.com/machine-run/machine/vmimage/oci"
)

// defaultImageRef is the registry reference new machines pull when the user names no image
// and none is built. Releases set it: go build -ldflags "-X main.defaultImageRef=REF"
// (make IMAGE_REF=REF). Empty in development builds.
var defaultImageRef = ""

// errNoDefaultImage is what a build without defaultImageRef says when it has nothing to boot.
var errNoDefaultImage = errors.New("this build has no default image; pass --image REF, set MACHINE_IMAGE, or build one with `machine image build` (Linux)")

// settingsFile is $MACHINE_HOME/settings.json; "image" is the default --image.
type settingsFile struct {
	Image string `json:"image,omitempty"`
}

func loadSettings() (settingsFile, error) {
	var st settingsFile
	s, err := store.Open()
	if err != nil {
		return st, err
	}
	p := filepath.Join(s.Home, "settings.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return st, fmt.Errorf("settings %s: %w", p, err)
	}
	return st, nil
}

// bootImage is the image folder a machine is made from and how it was named.
type bootImage struct {
	Dir    string
	Digest string // OCI manifest digest (also for built images)
	Ref    string // registry reference, if it came from one
}

// resolveImage turns an --image value into a whole image folder for arch. value is a
// folder or a registry reference; "" falls back, in order, to $MACHINE_IMAGE, the "image"
// key of $MACHINE_HOME/settings.json, the newest image built for arch, and this build's
// default reference. A reference already in the image cache is used as is; otherwise it
// is pulled (progress on progress, which may be nil). `create`, `start` and `upgrade`
// all come here.
func resolveImage(ctx context.Context, value, arch string, progress io.Writer) (*bootImage, error) {
	source := "--image"
	if value == "" {
		if v := os.Getenv("MACHINE_IMAGE"); v != "" {
			value, source = v, "MACHINE_IMAGE"
		}
	}
	if value == "" {
		st, err := loadSettings()
		if err != nil {
			return nil, err
		}
		if st.Image != "" {
			value, source = st.Image, "settings.json image"
		}
	}
	if value == "" {
		latest, err := vmimage.Latest(arch)
		if err == nil {
			return builtImage(latest, arch)
		}
		if !errors.Is(err, vmimage.ErrNoImage) {
			return nil, err
		}
		if defaultImageRef == "" {
			return nil, fmt.Errorf("no %s guest image: %w", arch, errNoDefaultImage)
		}
		value, source = defaultImageRef, "default image"
	}
	if st, err := os.Stat(value); err == nil && st.IsDir() {
		return builtImage(value, arch)
	} else if looksLikePath(value) {
		return nil, fmt.Errorf("%s %q: not a folder (a built image folder, or a registry reference such as registry.example/machine/image:TAG)", source, value)
	}
	cache, err := oci.OpenCache()
	if err != nil {
		return nil, err
	}
	img, err := cache.Lookup(value, arch)
	if errors.Is(err, oci.ErrNotCached) {
		if progress == nil {
			progress = io.Discard
		}
		fmt.Fprintf(progress, "Pulling %s (%s) for %s\n", value, source, arch)
		img, err = cache.Pull(ctx, value, oci.PullOptions{Arch: arch, Progress: newPullProgress(progress)})
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", source, value, err)
	}
	if img.Arch != arch {
		return nil, fmt.Errorf("image %s is for %s, not %s", value, img.Arch, arch)
	}
	return &bootImage{Dir: img.Dir, Digest: img.Digest, Ref: oci.Canonical(value)}, nil
}

// looksLikePath tells a missing folder from a reference: references never start with
// "/", ".", "~" or a drive letter, nor hold a backslash.
func looksLikePath(v string) bool {
	return filepath.IsAbs(v) || strings.HasPrefix(v, ".") || strings.HasPrefix(v, "~") || strings.Contains(v, `\`) ||
		len(v) > 1 && v[1] == ':' && !strings.Contains(v[2:], "/")
}

// builtImage checks a built image folder and names it by its OCI digest.
func builtImage(dir, arch string) (*bootImage, error) {
	m, err := vmimage.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", dir, err)
	}
	if m.Arch != arch {
		return nil, fmt.Errorf("image %s is for %s, not %s: build one with `machine image build --arch %s`", dir, m.Arch, arch, arch)
	}
	d, err := oci.Digest(dir)
	if err != nil {
		return nil, err
	}
	return &bootImage{Dir: dir, Digest: d}, nil
}
