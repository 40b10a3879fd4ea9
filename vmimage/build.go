package vmimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Options configure Build.
type Options struct {
	// Arch is the guest architecture: "amd64" or "arm64".
	Arch string
	// Agent is the static guest-agent binary for Arch. Empty builds ./cmd/machine-guestagent
	// from the module root above the working directory.
	Agent string
	// Output, when set, receives a copy (hard links when possible) of the image.
	Output string
	// Cache overrides CacheDir().
	Cache string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Result describes a finished build.
type Result struct {
	// Dir is the image directory in the cache (<cache>/images/<arch>/<key>).
	Dir      string
	Manifest *Manifest
	// ImageCached and RootfsCached report which cache levels were hits.
	ImageCached  bool
	RootfsCached bool
	Duration     time.Duration
}

// job carries one build's resolved inputs to the platform code.
type job struct {
	arch, cache         string
	agentPath, agentSHA string
	rootfsKey, imageKey string
	rootfsCached        bool
	log                 *slog.Logger
}

// Build makes the guest image for opts.Arch, or reuses the cached one built from the same
// inputs, points <cache>/images/<arch>/latest at it and copies it to opts.Output.
// Nothing half-built is ever left under the cache's final names.
func Build(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	if err := checkArch(opts.Arch); err != nil {
		return nil, err
	}
	j := &job{arch: opts.Arch, cache: opts.Cache, log: opts.Log}
	if j.log == nil {
		j.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := preflight(j); err != nil {
		return nil, err
	}
	if j.cache == "" {
		c, err := CacheDir()
		if err != nil {
			return nil, err
		}
		j.cache = c
	}
	images := imagesDir(j.cache, j.arch)
	if err := os.MkdirAll(images, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}

	agent := opts.Agent
	if agent == "" {
		tmp, err := os.MkdirTemp(images, ".agent-")
		if err != nil {
			return nil, fmt.Errorf("image cache: %w", err)
		}
		defer os.RemoveAll(tmp)
		agent = filepath.Join(tmp, "machine-guestagent")
		j.log.Info("building guest agent", "arch", j.arch)
		if err := buildAgent(ctx, j.arch, agent); err != nil {
			return nil, err
		}
	}
	sum, _, err := hashFile(agent)
	if err != nil {
		return nil, fmt.Errorf("guest agent: %w", err)
	}
	j.agentPath, j.agentSHA = agent, sum
	j.rootfsKey = cacheKey(newRootfsInputs(j.arch))
	j.imageKey = cacheKey(newImageInputs(j.rootfsKey, j.agentSHA))

	res := &Result{Dir: filepath.Join(images, j.imageKey)}
	m, err := Load(res.Dir)
	switch {
	case err == nil:
		res.ImageCached, res.RootfsCached = true, true
		j.log.Info("image cached", "key", j.imageKey)
	case errors.Is(err, fs.ErrNotExist):
		if m, err = buildInto(ctx, j, images); err != nil {
			return nil, err
		}
		res.RootfsCached = j.rootfsCached
	default:
		return nil, err
	}
	res.Manifest = m
	if err := setLatest(images, j.imageKey); err != nil {
		return nil, err
	}
	prune(j, j.imageKey)
	if opts.Output != "" {
		if err := exportImage(m, res.Dir, opts.Output); err != nil {
			return nil, err
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// buildInto builds the image in a temporary directory next to its final name and renames it
// into place only once complete.
func buildInto(ctx context.Context, j *job, images string) (*Manifest, error) {
	tmp, err := os.MkdirTemp(images, ".build-"+j.imageKey+"-")
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	m, err := buildImage(ctx, j, tmp)
	if err != nil {
		return nil, fmt.Errorf("build %s image: %w", j.arch, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	final := filepath.Join(images, j.imageKey)
	if err := os.Rename(tmp, final); err != nil {
		// Another build of the same inputs may have finished first: use its image.
		if other, lerr := Load(final); lerr == nil {
			return other, nil
		}
		os.RemoveAll(final) // an unloadable leftover under the same key
		if err := os.Rename(tmp, final); err != nil {
			return nil, fmt.Errorf("image cache: %w", err)
		}
	}
	return m, nil
}

// exportImage hard-links (or copies) the image's files and manifest into dir.
func exportImage(m *Manifest, from, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output %s: %w", dir, err)
	}
	names := []string{ManifestName}
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	for _, name := range names {
		dst := filepath.Join(dir, name)
		tmp := filepath.Join(dir, "."+name+".tmp")
		os.Remove(tmp)
		if err := os.Link(filepath.Join(from, name), tmp); err != nil {
			if err := copyFile(filepath.Join(from, name), tmp); err != nil {
				return fmt.Errorf("output %s: %w", dir, err)
			}
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("output %s: %w", dir, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
