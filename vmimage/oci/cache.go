package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/internal/atomicfile"
	"github.com/machine-run/machine/vmimage"
)

// Cache is the content-addressed store of pulled and imported images, shared by every
// machine of the user:
//
//	<dir>/blobs/sha256/<hex>   manifests, configs and layers, each verified before it is named
//	<dir>/pulled/<hex>/        an image folder (vmimage.Load) per image-manifest digest,
//	                           hard links to the blobs plus manifest.json
//	<dir>/refs.json            reference + architecture -> image-manifest digest
type Cache struct {
	Dir string
}

// OpenCache returns the cache under vmimage.CacheDir().
func OpenCache() (*Cache, error) {
	d, err := vmimage.CacheDir()
	if err != nil {
		return nil, err
	}
	return &Cache{Dir: d}, nil
}

// ErrNotCached is returned by Lookup when the cache has no image for a reference.
var ErrNotCached = errors.New("not in the image cache")

// Image is one image in the cache. Its JSON field names are an API (`image ls --format json`).
type Image struct {
	Refs     []string `json:"refs"`
	Digest   string   `json:"digest"`
	Index    string   `json:"index_digest,omitempty"`
	Arch     string   `json:"arch"`
	Kernel   string   `json:"kernel"`
	Engine   string   `json:"engine"`
	Agent    string   `json:"agent"`
	Size     int64    `json:"size"`
	Dir      string   `json:"dir"`
	Machines []string `json:"machines"`
	// Cached is true when a pull found the image already in the cache.
	Cached bool `json:"cached"`
	// Downloaded counts the blob bytes a pull fetched (0 on a cache hit).
	Downloaded int64 `json:"downloaded"`
}

// refEntry is one line of refs.json.
type refEntry struct {
	Ref    string    `json:"ref"`
	Arch   string    `json:"arch"`
	Digest string    `json:"digest"`
	Index  string    `json:"index_digest,omitempty"`
	Pulled time.Time `json:"pulled"`
}

type refsFile struct {
	Refs []refEntry `json:"refs"`
}

func (c *Cache) blobPath(h v1.Hash) string {
	return filepath.Join(c.Dir, "blobs", h.Algorithm, h.Hex)
}
func (c *Cache) imageDir(h v1.Hash) string { return filepath.Join(c.Dir, "pulled", h.Hex) }
func (c *Cache) refsPath() string          { return filepath.Join(c.Dir, "refs.json") }
func (c *Cache) lockPath() string          { return filepath.Join(c.Dir, "refs.lock") }

// lock serialises changes to refs.json and the removal of images.
func (c *Cache) lock(ctx context.Context) (*store.Lock, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	return store.LockContext(ctx, c.lockPath())
}

func (c *Cache) readRefs() (*refsFile, error) {
	var rf refsFile
	b, err := os.ReadFile(c.refsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &rf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("image cache: %s: %w", c.refsPath(), err)
	}
	return &rf, nil
}

func (c *Cache) writeRefs(rf *refsFile) error {
	sort.Slice(rf.Refs, func(i, j int) bool {
		a, b := rf.Refs[i], rf.Refs[j]
		return a.Ref < b.Ref || a.Ref == b.Ref && a.Arch < b.Arch
	})
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.refsPath(), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	return nil
}

// setRef records that ref names digest for arch.
func (c *Cache) setRef(ctx context.Context, e refEntry) error {
	l, err := c.lock(ctx)
	if err != nil {
		return err
	}
	defer l.Unlock()
	rf, err := c.readRefs()
	if err != nil {
		return err
	}
	rf.Refs = slices.DeleteFunc(rf.Refs, func(o refEntry) bool { return o.Ref == e.Ref && o.Arch == e.Arch })
	e.Pulled = time.Now().UTC()
	rf.Refs = append(rf.Refs, e)
	return c.writeRefs(rf)
}

// Canonical names ref the way refs.json does (registry/repository:tag or @digest).
func Canonical(ref string) string {
	n, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	return n.Name()
}

// PullOptions are the options of Pull.
type PullOptions struct {
	Remote
	// Arch selects the image of a multi-architecture index; "" means the host's.
	Arch string
	// Progress follows the blobs being downloaded; nil shows nothing.
	Progress Progress
}

// Pull fetches the image ref names for o.Arch into the cache, unless the cache holds that
// manifest digest already, and records the reference.
func (c *Cache) Pull(ctx context.Context, ref string, o PullOptions) (*Image, error) {
	arch := o.Arch
	if arch == "" {
		arch = HostArch()
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	n, err := o.parse(ref)
	if err != nil {
		return nil, err
	}
	res, err := o.resolve(ctx, n, arch)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	entry := refEntry{Ref: n.Name(), Arch: arch, Digest: res.digest.String(), Index: res.index}
	if meta, err := c.load(res.digest); err == nil {
		if meta.Arch != arch {
			return nil, fmt.Errorf("pull %s: image %s is for %s, not %s", ref, res.digest, meta.Arch, arch)
		}
		if err := c.setRef(ctx, entry); err != nil {
			return nil, err
		}
		img, err := c.describe(res.digest, meta)
		if err != nil {
			return nil, err
		}
		img.Cached = true
		return img, nil
	}
	var m v1.Manifest
	if err := json.Unmarshal(res.manifest, &m); err != nil {
		return nil, fmt.Errorf("pull %s: manifest %s: %w", ref, res.digest, err)
	}
	f, err := o.fetcher(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	var downloaded int64
	get := func(d v1.Descriptor, role string) error {
		final := c.blobPath(d.Digest)
		if st, err := os.Stat(final); err == nil && st.Size() == d.Size {
			return nil // a blob is named only after it verified
		}
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return fmt.Errorf("image cache: %w", err)
		}
		bp := &countingBlob{BlobProgress: o.Progress.Blob(role, d)}
		err := f.fetch(ctx, d, role, final, bp)
		bp.Done(err)
		downloaded += bp.n
		return err
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("pull %s: %s is not a machine guest image (config %q, artifact type %q)", ref, res.digest, m.Config.MediaType, m.ArtifactType)
	}
	if err := get(m.Config, "config"); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	config, err := os.ReadFile(c.blobPath(m.Config.Digest))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	meta, byRole, err := parseArtifact(&m, config)
	if err != nil {
		return nil, fmt.Errorf("pull %s: image %s: %w", ref, res.digest, err)
	}
	if meta.Arch != arch {
		return nil, fmt.Errorf("pull %s: image %s is for %s, not %s: pass --arch %s or pull a reference for %s", ref, res.digest, meta.Arch, arch, meta.Arch, arch)
	}
	for _, r := range roles {
		if err := get(byRole[r.role], r.role); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	}
	if err := c.putBlob(res.digest, res.manifest); err != nil {
		return nil, err
	}
	if err := c.materialize(res.digest, meta, config); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := c.setRef(ctx, entry); err != nil {
		return nil, err
	}
	img, err := c.describe(res.digest, meta)
	if err != nil {
		return nil, err
	}
	img.Downloaded = downloaded
	return img, nil
}

func parseArtifact(m *v1.Manifest, config []byte) (*vmimage.Manifest, map[string]v1.Descriptor, error) {
	var meta vmimage.Manifest
	if err := json.Unmarshal(config, &meta); err != nil {
		return nil, nil, fmt.Errorf("manifest.json: %w", err)
	}
	byRole, err := checkArtifact(m, &meta)
	if err != nil {
		return nil, nil, err
	}
	return &meta, byRole, nil
}

// putBlob stores small verified bytes (a manifest) under their digest.
func (c *Cache) putBlob(h v1.Hash, b []byte) error {
	if sha256Hash(b) != h {
		return fmt.Errorf("blob %s: %w", h, ErrDigest)
	}
	p := c.blobPath(h)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	return nil
}

// materialize makes the image folder of the image-manifest digest h from verified blobs:
// hard links named as manifest.json says (copies where links are not possible), built in a
// temporary folder and renamed into place.
func (c *Cache) materialize(h v1.Hash, meta *vmimage.Manifest, config []byte) error {
	dst := c.imageDir(h)
	if _, err := vmimage.Load(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".tmp-"+h.Hex[:12]+"-")
	if err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range meta.Files {
		src := c.blobPath(v1.Hash{Algorithm: "sha256", Hex: f.SHA256})
		if err := linkOrCopy(src, filepath.Join(tmp, f.Name)); err != nil {
			return fmt.Errorf("image cache: %s: %w", f.Role, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, vmimage.ManifestName), config, 0o644); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	if _, err := vmimage.Load(tmp); err != nil {
		return err
	}
	os.RemoveAll(dst) // a half-made folder from a crash before this change; never a whole one (Load failed)
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	syncDir(dst)
	return nil
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o444)
}

// load reads the image folder of digest h.
func (c *Cache) load(h v1.Hash) (*vmimage.Manifest, error) {
	return vmimage.Load(c.imageDir(h))
}

// countingBlob counts the bytes a download wrote.
type countingBlob struct {
	BlobProgress
	n int64
}

func (c *countingBlob) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return c.BlobProgress.Write(b)
}
