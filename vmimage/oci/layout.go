package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const layoutFile = `{"imageLayoutVersion":"1.0.0"}`

// Export writes the image(s) target names (a reference: every architecture pulled for it;
// or a digest) to w as an OCI image layout tarball that Import (or any OCI tool) reads.
func (c *Cache) Export(target string, w io.Writer) error {
	rf, err := c.readRefs()
	if err != nil {
		return err
	}
	digests, byRef, err := c.match(target, rf)
	if err != nil {
		return err
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	var blobs []v1.Descriptor
	for _, d := range digests {
		h, _ := v1.NewHash(d)
		raw, err := os.ReadFile(c.blobPath(h))
		if err != nil {
			return fmt.Errorf("export %s: manifest %s: %w", target, d, err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("export %s: manifest %s: %w", target, d, err)
		}
		desc := v1.Descriptor{
			MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType, Digest: h, Size: int64(len(raw)),
			Platform: Platform(m.Annotations[AnnotationArch]),
		}
		ref := Canonical(target)
		if !byRef {
			ref = ""
			for _, e := range rf.Refs {
				if e.Digest == d {
					ref = e.Ref
					break
				}
			}
		}
		if ref != "" {
			desc.Annotations = map[string]string{annotationRefName: ref}
		}
		idx.Manifests = append(idx.Manifests, desc)
		blobs = append(blobs, v1.Descriptor{Digest: h, Size: int64(len(raw))}, m.Config)
		blobs = append(blobs, m.Layers...)
	}
	tw := tar.NewWriter(w)
	index, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		body []byte
	}{{"oci-layout", []byte(layoutFile)}, {"index.json", index}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("export %s: %w", target, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return fmt.Errorf("export %s: %w", target, err)
		}
	}
	seen := map[v1.Hash]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		if err := addBlob(tw, c.blobPath(b.Digest), "blobs/sha256/"+b.Digest.Hex, b.Size); err != nil {
			return fmt.Errorf("export %s: blob %s: %w", target, b.Digest, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export %s: %w", target, err)
	}
	return nil
}

func addBlob(tw *tar.Writer, path, name string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, size)
	return err
}

// Import reads an OCI image layout tarball (from Export) into the cache. Every blob is
// hashed as it is copied and kept only if it matches its name; the images it lists are
// checked like pulled ones and recorded under their ref.name annotation, if any.
func (c *Cache) Import(ctx context.Context, r io.Reader) ([]*Image, error) {
	tr := tar.NewReader(r)
	var index []byte
	var added []v1.Hash // blobs this import wrote, removed again if it fails
	ok := false
	defer func() {
		if !ok {
			for _, h := range added {
				os.Remove(c.blobPath(h))
			}
		}
	}()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		switch {
		case hdr.Typeflag != tar.TypeReg:
			continue
		case name == "index.json":
			if index, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return nil, fmt.Errorf("import: index.json: %w", err)
			}
		case strings.HasPrefix(name, "blobs/sha256/"):
			h, err := v1.NewHash("sha256:" + strings.TrimPrefix(name, "blobs/sha256/"))
			if err != nil {
				return nil, fmt.Errorf("import: %s: not a blob name", name)
			}
			wrote, err := c.importBlob(h, tr)
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			if wrote {
				added = append(added, h)
			}
		}
	}
	if index == nil {
		return nil, errors.New("import: no index.json: not an OCI image layout tarball (make one with `machine image export`)")
	}
	im, err := v1.ParseIndexManifest(strings.NewReader(string(index)))
	if err != nil {
		return nil, fmt.Errorf("import: index.json: %w", err)
	}
	var out []*Image
	for _, d := range im.Manifests {
		img, err := c.importImage(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("import: image %s: %w", d.Digest, err)
		}
		out = append(out, img)
	}
	if len(out) == 0 {
		return nil, errors.New("import: index.json lists no image")
	}
	ok = true
	return out, nil
}

// importBlob copies one blob into the cache through a hash; wrote is false when the cache
// had it already.
func (c *Cache) importBlob(h v1.Hash, r io.Reader) (wrote bool, err error) {
	final := c.blobPath(h)
	if _, err := os.Stat(final); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return false, err
	}
	part := final + ".partial"
	f, err := os.Create(part)
	if err != nil {
		return false, err
	}
	vw := &verifyingWriter{w: f, h: sha256.New()}
	_, err = io.Copy(vw, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && vw.digest() != h.String() {
		err = &DigestError{Ref: "layout", Role: "blob", Want: h, Got: vw.digest(), Size: vw.n}
	}
	if err != nil {
		os.Remove(part)
		return false, fmt.Errorf("blob %s: %w", h, err)
	}
	if err := os.Rename(part, final); err != nil {
		os.Remove(part)
		return false, err
	}
	return true, nil
}

func (c *Cache) importImage(ctx context.Context, d v1.Descriptor) (*Image, error) {
	if d.MediaType.IsIndex() {
		return nil, errors.New("nested indexes are not supported")
	}
	raw, err := os.ReadFile(c.blobPath(d.Digest))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if sha256Hash(raw) != d.Digest {
		return nil, fmt.Errorf("manifest: %w", ErrDigest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	config, err := os.ReadFile(c.blobPath(m.Config.Digest))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	meta, byRole, err := parseArtifact(&m, config)
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		l := byRole[r.role]
		if st, err := os.Stat(c.blobPath(l.Digest)); err != nil || st.Size() != l.Size {
			return nil, fmt.Errorf("%s blob %s is missing from the tarball", r.role, l.Digest)
		}
	}
	if err := c.materialize(d.Digest, meta, config); err != nil {
		return nil, err
	}
	if ref := d.Annotations[annotationRefName]; ref != "" && strings.ContainsAny(ref, "/:") {
		if err := c.setRef(ctx, refEntry{Ref: Canonical(ref), Arch: meta.Arch, Digest: d.Digest.String()}); err != nil {
			return nil, err
		}
	}
	img, err := c.describe(d.Digest, meta)
	if err != nil {
		return nil, err
	}
	return img, nil
}
