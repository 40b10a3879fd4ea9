package oci

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fileImage is a v1.Image whose manifest and config are held in memory and whose layers
// are files on disk (a built image folder, or the cache's blobs), streamed, never loaded.
type fileImage struct {
	manifest, config []byte
	layers           map[v1.Hash]fileLayer
}

// newFileImage makes a v1.Image from a raw manifest, its config, and a function that
// names the file holding a layer.
func newFileImage(manifest, config []byte, path func(v1.Descriptor) string) (v1.Image, error) {
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	fi := &fileImage{manifest: manifest, config: config, layers: map[v1.Hash]fileLayer{}}
	for _, l := range m.Layers {
		fi.layers[l.Digest] = fileLayer{desc: l, path: path(l)}
	}
	return partial.CompressedToImage(fi)
}

func (fi *fileImage) RawManifest() ([]byte, error)        { return fi.manifest, nil }
func (fi *fileImage) RawConfigFile() ([]byte, error)      { return fi.config, nil }
func (fi *fileImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (fi *fileImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	l, ok := fi.layers[h]
	if !ok {
		return nil, fmt.Errorf("image has no layer %s", h)
	}
	return l, nil
}

// fileLayer is a layer stored as-is (the files are compressed already): its compressed
// and uncompressed forms are the same bytes, so its digest is also its diff ID.
type fileLayer struct {
	desc v1.Descriptor
	path string
}

func (l fileLayer) Digest() (v1.Hash, error)             { return l.desc.Digest, nil }
func (l fileLayer) DiffID() (v1.Hash, error)             { return l.desc.Digest, nil }
func (l fileLayer) Size() (int64, error)                 { return l.desc.Size, nil }
func (l fileLayer) MediaType() (types.MediaType, error)  { return l.desc.MediaType, nil }
func (l fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l fileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
