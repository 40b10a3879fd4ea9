// Package oci distributes guest images as OCI artifacts: it turns a built image folder
// (vmimage.Load) into an OCI image manifest, pushes it (one architecture, or both as an OCI
// index) with go-containerregistry, and pulls it into a content-addressed cache shared by
// every machine, verifying each blob against its digest while it streams and resuming an
// interrupted download with an HTTP range request. It also moves images between hosts
// without a network as OCI image layout tarballs. The format is described in FORMAT.md.
package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/machine-run/machine/vmimage"
)

// Media types of the artifact. They are the one definition of the format (see FORMAT.md).
const (
	// ArtifactType is the manifest's artifactType: a guest image of this project.
	ArtifactType = "application/vnd.machine-run.image.v1"
	// ConfigMediaType is the config blob: the image's manifest.json (vmimage.Manifest).
	ConfigMediaType types.MediaType = "application/vnd.machine-run.image.manifest.v1+json"
	// KernelMediaType, InitramfsMediaType and RootMediaType are the layers, one per file.
	KernelMediaType    types.MediaType = "application/vnd.machine-run.image.kernel.v1"
	InitramfsMediaType types.MediaType = "application/vnd.machine-run.image.initramfs.v1"
	RootMediaType      types.MediaType = "application/vnd.machine-run.image.root.v1"
)

// Annotation keys on the image manifest. AnnotationTitle (OCI's own) names a layer's file.
const (
	AnnotationArch          = "io.github.machine-run.image.arch"
	AnnotationSuite         = "io.github.machine-run.image.suite"
	AnnotationKernelRelease = "io.github.machine-run.image.kernel-release"
	AnnotationDockerd       = "io.github.machine-run.image.dockerd"
	AnnotationContainerd    = "io.github.machine-run.image.containerd"
	AnnotationRunc          = "io.github.machine-run.image.runc"
	AnnotationAgent         = "io.github.machine-run.image.agent"
	AnnotationTitle         = "org.opencontainers.image.title"
	// annotationRefName names a manifest in an OCI layout's index.json.
	annotationRefName = "org.opencontainers.image.ref.name"
)

// roles lists the layers in manifest order with their media types.
var roles = []struct {
	role      string
	mediaType types.MediaType
}{
	{vmimage.RoleKernel, KernelMediaType},
	{vmimage.RoleInitramfs, InitramfsMediaType},
	{vmimage.RoleRoot, RootMediaType},
}

func roleOf(mt types.MediaType) string {
	for _, r := range roles {
		if r.mediaType == mt {
			return r.role
		}
	}
	return ""
}

// Platform is the OCI platform of an image built for arch.
func Platform(arch string) *v1.Platform { return &v1.Platform{OS: "linux", Architecture: arch} }

// localImage is a built image folder described as the artifact Push would write.
type localImage struct {
	dir      string
	config   []byte // manifest.json, byte for byte
	meta     *vmimage.Manifest
	manifest []byte
	digest   v1.Hash
}

// readLocal loads the image folder dir and computes its OCI manifest. It hashes only
// manifest.json: the layer digests are the sha256 sums manifest.json records.
func readLocal(dir string) (*localImage, error) {
	meta, err := vmimage.Load(dir)
	if err != nil {
		return nil, err
	}
	config, err := os.ReadFile(filepath.Join(dir, vmimage.ManifestName))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", dir, err)
	}
	manifest, err := manifestFor(meta, config)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", dir, err)
	}
	return &localImage{dir: dir, config: config, meta: meta, manifest: manifest, digest: sha256Hash(manifest)}, nil
}

// manifestFor is the OCI image manifest of an image whose manifest.json is config.
// It is deterministic (no timestamps), so the same build always has the same digest.
func manifestFor(meta *vmimage.Manifest, config []byte) ([]byte, error) {
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Size: int64(len(config)), Digest: sha256Hash(config)},
		Annotations:   annotations(meta),
	}
	for _, r := range roles {
		f := fileByRole(meta, r.role)
		if f == nil {
			return nil, fmt.Errorf("manifest lists no %s file", r.role)
		}
		h, err := v1.NewHash("sha256:" + f.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%s: sha256 %q: %w", r.role, f.SHA256, err)
		}
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: r.mediaType, Size: f.Size, Digest: h,
			Annotations: map[string]string{AnnotationTitle: f.Name},
		})
	}
	return json.Marshal(m)
}

func annotations(m *vmimage.Manifest) map[string]string {
	return map[string]string{
		AnnotationArch:          m.Arch,
		AnnotationSuite:         m.Suite,
		AnnotationKernelRelease: m.KernelRelease,
		AnnotationDockerd:       m.Engine.Dockerd,
		AnnotationContainerd:    m.Engine.Containerd,
		AnnotationRunc:          m.Engine.Runc,
		AnnotationAgent:         m.AgentVersion,
	}
}

func fileByRole(m *vmimage.Manifest, role string) *vmimage.File {
	for i := range m.Files {
		if m.Files[i].Role == role {
			return &m.Files[i]
		}
	}
	return nil
}

// Digest returns the digest of the OCI manifest Push writes for the built image folder dir
// (what a pull of it records too), so built and pulled images are named the same way.
func Digest(dir string) (string, error) {
	li, err := readLocal(dir)
	if err != nil {
		return "", err
	}
	return li.digest.String(), nil
}

func sha256Hash(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// checkArtifact checks that a pulled or imported manifest is a guest image whose config
// agrees with its layers, and returns the layers by role.
func checkArtifact(m *v1.Manifest, meta *vmimage.Manifest) (map[string]v1.Descriptor, error) {
	if m.ArtifactType != ArtifactType && m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("not a machine guest image (artifact type %q, config %q)", m.ArtifactType, m.Config.MediaType)
	}
	byRole := map[string]v1.Descriptor{}
	for _, l := range m.Layers {
		role := roleOf(l.MediaType)
		if role == "" {
			return nil, fmt.Errorf("layer %s has unknown media type %q", l.Digest, l.MediaType)
		}
		if _, dup := byRole[role]; dup {
			return nil, fmt.Errorf("two %s layers", role)
		}
		byRole[role] = l
	}
	for _, r := range roles {
		l, ok := byRole[r.role]
		if !ok {
			return nil, fmt.Errorf("no %s layer", r.role)
		}
		f := fileByRole(meta, r.role)
		if f == nil {
			return nil, fmt.Errorf("its manifest.json lists no %s file", r.role)
		}
		if l.Digest.Algorithm != "sha256" || l.Digest.Hex != f.SHA256 || l.Size != f.Size {
			return nil, fmt.Errorf("%s layer %s (%d bytes) disagrees with manifest.json (sha256:%s, %d bytes)", r.role, l.Digest, l.Size, f.SHA256, f.Size)
		}
		if f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." || f.Name == vmimage.ManifestName {
			return nil, fmt.Errorf("%s file name %q is not a plain name", r.role, f.Name)
		}
	}
	if meta.SchemaVersion != vmimage.SchemaVersion {
		return nil, fmt.Errorf("manifest schema %d, this build reads %d: upgrade machine or pull a newer image", meta.SchemaVersion, vmimage.SchemaVersion)
	}
	return byRole, nil
}
