package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/machine-run/machine/vmimage"
)

// HostArch is the guest architecture that runs natively on this host.
func HostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "amd64"
}

// describe makes the Image of the cached digest h, with the references naming it.
func (c *Cache) describe(h v1.Hash, meta *vmimage.Manifest) (*Image, error) {
	rf, err := c.readRefs()
	if err != nil {
		return nil, err
	}
	img := &Image{
		Refs: []string{}, Digest: h.String(), Arch: meta.Arch, Kernel: meta.KernelRelease,
		Engine: meta.Engine.Dockerd, Agent: meta.AgentVersion, Dir: c.imageDir(h), Machines: []string{},
	}
	for _, f := range meta.Files {
		img.Size += f.Size
	}
	for _, e := range rf.Refs {
		if e.Digest == img.Digest {
			img.Refs = append(img.Refs, e.Ref)
			img.Index = e.Index
		}
	}
	return img, nil
}

// List returns every image in the cache, sorted by reference then digest.
func (c *Cache) List() ([]*Image, error) {
	entries, err := os.ReadDir(filepath.Join(c.Dir, "pulled"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	var out []*Image
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		meta, err := c.load(h)
		if err != nil {
			continue // not whole: a pull never names a folder before it is
		}
		img, err := c.describe(h, meta)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.Join(out[i].Refs, ","), strings.Join(out[j].Refs, ",")
		return a < b || a == b && out[i].Digest < out[j].Digest
	})
	return out, nil
}

// Lookup returns the cached image ref names for arch, without asking a registry.
func (c *Cache) Lookup(ref, arch string) (*Image, error) {
	rf, err := c.readRefs()
	if err != nil {
		return nil, err
	}
	want := Canonical(ref)
	for _, e := range rf.Refs {
		if e.Ref != want || e.Arch != arch {
			continue
		}
		h, err := v1.NewHash(e.Digest)
		if err != nil {
			break
		}
		meta, err := c.load(h)
		if err != nil {
			break
		}
		return c.describe(h, meta)
	}
	return nil, fmt.Errorf("%s for %s: %w", ref, arch, ErrNotCached)
}

// ErrInUse is returned by Remove for an image a machine boots.
var ErrInUse = errors.New("image in use")

// match returns the digests target names: a digest (or a unique prefix of one, at least
// 12 hex digits), else a reference (every architecture pulled for it).
func (c *Cache) match(target string, rf *refsFile) (digests []string, byRef bool, err error) {
	hexPart := strings.TrimPrefix(target, "sha256:")
	if isHex(hexPart) && (len(hexPart) >= 12 || strings.HasPrefix(target, "sha256:")) {
		imgs, err := c.List()
		if err != nil {
			return nil, false, err
		}
		var found []string
		for _, img := range imgs {
			if strings.HasPrefix(img.Digest, "sha256:"+hexPart) {
				found = append(found, img.Digest)
			}
		}
		if len(found) > 1 {
			return nil, false, fmt.Errorf("digest %s is ambiguous: it starts %d images", target, len(found))
		}
		if len(found) == 1 {
			return found, false, nil
		}
	}
	want := Canonical(target)
	var found []string
	for _, e := range rf.Refs {
		if e.Ref == want && !slices.Contains(found, e.Digest) {
			found = append(found, e.Digest)
		}
	}
	if len(found) == 0 {
		return nil, false, fmt.Errorf("image %s: %w (see `machine image ls`)", target, ErrNotCached)
	}
	return found, true, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// Remove deletes the image(s) target names (a reference or a digest) from the cache:
// its reference entries, then every image no reference names any more with the blobs no
// other image shares. usedBy says which machines boot a digest; Remove refuses those.
func (c *Cache) Remove(ctx context.Context, target string, usedBy func(digest string) []string) ([]string, error) {
	l, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	rf, err := c.readRefs()
	if err != nil {
		return nil, err
	}
	digests, byRef, err := c.match(target, rf)
	if err != nil {
		return nil, err
	}
	keep := slices.DeleteFunc(slices.Clone(rf.Refs), func(e refEntry) bool {
		if byRef {
			return e.Ref == Canonical(target)
		}
		return slices.Contains(digests, e.Digest)
	})
	// Images no reference names any more are deleted; refuse if a machine boots one.
	var gone []string
	for _, d := range digests {
		if slices.ContainsFunc(keep, func(e refEntry) bool { return e.Digest == d }) {
			continue
		}
		if users := usedBy(d); len(users) > 0 {
			return nil, fmt.Errorf("image %s (%s): %w by machine %s: remove those first (`machine rm NAME`)",
				target, short(d), ErrInUse, strings.Join(users, ", "))
		}
		gone = append(gone, d)
	}
	rf.Refs = keep
	if err := c.writeRefs(rf); err != nil {
		return nil, err
	}
	return gone, c.deleteImages(gone)
}

func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// deleteImages removes image folders and the blobs only they use.
func (c *Cache) deleteImages(digests []string) error {
	blobsOf := func(d string) []v1.Hash {
		h, err := v1.NewHash(d)
		if err != nil {
			return nil
		}
		b, err := os.ReadFile(c.blobPath(h))
		if err != nil {
			return []v1.Hash{h}
		}
		var m v1.Manifest
		if json.Unmarshal(b, &m) != nil {
			return []v1.Hash{h}
		}
		out := []v1.Hash{h, m.Config.Digest}
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
		return out
	}
	shared := map[v1.Hash]bool{}
	imgs, err := c.List()
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if slices.Contains(digests, img.Digest) {
			continue
		}
		for _, h := range blobsOf(img.Digest) {
			shared[h] = true
		}
	}
	var errs []error
	for _, d := range digests {
		blobs := blobsOf(d)
		h, _ := v1.NewHash(d)
		if err := os.RemoveAll(c.imageDir(h)); err != nil {
			errs = append(errs, err)
		}
		for _, b := range blobs {
			if !shared[b] {
				if err := os.Remove(c.blobPath(b)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}
