package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Remote says how to reach registries. The zero value uses the docker config and its
// credential helpers for auth and allows plain HTTP only to loopback registries.
type Remote struct {
	// Insecure allows plain HTTP (and unverified TLS) to any registry.
	Insecure bool
	// Keychain resolves credentials; nil means authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport is the base transport; nil means a clone of http.DefaultTransport.
	Transport http.RoundTripper
}

// ErrPlainHTTP is returned when a registry that is not on loopback would be reached over
// plain HTTP without Insecure.
var ErrPlainHTTP = errors.New("plain HTTP is allowed only to loopback registries")

func (r *Remote) parse(ref string) (name.Reference, error) {
	var opts []name.Option
	if r.Insecure {
		opts = append(opts, name.Insecure)
	}
	n, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", ref, err)
	}
	return n, nil
}

func (r *Remote) keychain() authn.Keychain {
	if r.Keychain != nil {
		return r.Keychain
	}
	return authn.DefaultKeychain
}

// transport is the base round tripper with the plain-HTTP guard in front of it.
func (r *Remote) transport() http.RoundTripper {
	base := r.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if r.Insecure {
			t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // --insecure asks for it
		}
		base = t
	}
	return httpGuard{base: base, insecure: r.Insecure}
}

func (r *Remote) options(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(r.keychain()), remote.WithTransport(r.transport())}
}

// httpGuard refuses plain-HTTP requests to registries off loopback unless insecure.
// go-containerregistry falls back to HTTP for private-network addresses too; this does not.
type httpGuard struct {
	base     http.RoundTripper
	insecure bool
}

func (g httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.insecure && !IsLoopback(req.URL.Host) {
		return nil, fmt.Errorf("registry %s: %w: use HTTPS or pass --insecure", req.URL.Host, ErrPlainHTTP)
	}
	return g.base.RoundTrip(req)
}

// IsLoopback reports whether host (optionally with a port) is localhost, 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Push uploads the built image folders dirs to ref: one folder as an image manifest,
// several (one per architecture) as an OCI index. It returns the digest ref now names.
func (r *Remote) Push(ctx context.Context, ref string, dirs ...string) (string, error) {
	n, err := r.parse(ref)
	if err != nil {
		return "", err
	}
	if len(dirs) == 0 {
		return "", fmt.Errorf("push %s: no image folder", ref)
	}
	var imgs []v1.Image
	var arches []string
	for _, dir := range dirs {
		li, err := readLocal(dir)
		if err != nil {
			return "", err
		}
		for _, a := range arches {
			if a == li.meta.Arch {
				return "", fmt.Errorf("push %s: two images for %s", ref, a)
			}
		}
		img, err := newFileImage(li.manifest, li.config, func(d v1.Descriptor) string {
			return dir + "/" + d.Annotations[AnnotationTitle]
		})
		if err != nil {
			return "", err
		}
		imgs = append(imgs, img)
		arches = append(arches, li.meta.Arch)
	}
	opts := r.options(ctx)
	if len(imgs) == 1 {
		if err := remote.Write(n, imgs[0], opts...); err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
		d, _ := imgs[0].Digest()
		return d.String(), nil
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, img := range imgs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType, Platform: Platform(arches[i])},
		})
	}
	if err := remote.WriteIndex(n, idx, opts...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return d.String(), nil
}

// resolved is the image manifest a reference names for one architecture.
type resolved struct {
	ref      name.Reference
	digest   v1.Hash // of the image manifest
	index    string  // digest of the index it was chosen from, if any
	manifest []byte
}

// resolve fetches the manifest ref names and, for an index, the one for arch.
func (r *Remote) resolve(ctx context.Context, n name.Reference, arch string) (*resolved, error) {
	opts := r.options(ctx)
	desc, err := remote.Get(n, opts...)
	if err != nil {
		return nil, err
	}
	res := &resolved{ref: n, digest: desc.Digest, manifest: desc.Manifest}
	if desc.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(strings.NewReader(string(desc.Manifest)))
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		var have []string
		var pick *v1.Descriptor
		for i, m := range im.Manifests {
			if m.Platform == nil {
				continue
			}
			have = append(have, m.Platform.Architecture)
			if m.Platform.OS == "linux" && m.Platform.Architecture == arch {
				pick = &im.Manifests[i]
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("index %s has no linux/%s image (it has %s): pass --arch", desc.Digest, arch, strings.Join(have, ", "))
		}
		res.index = desc.Digest.String()
		d, err := remote.Get(n.Context().Digest(pick.Digest.String()), opts...)
		if err != nil {
			return nil, err
		}
		res.digest, res.manifest = d.Digest, d.Manifest
	}
	if sha256Hash(res.manifest) != res.digest {
		return nil, fmt.Errorf("manifest %s: %w", res.digest, ErrDigest)
	}
	return res, nil
}
