package vmimage

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCacheKeys(t *testing.T) {
	base := newImageInputs(cacheKey(newRootfsInputs("amd64")), "aaaa")
	if cacheKey(base) != cacheKey(newImageInputs(cacheKey(newRootfsInputs("amd64")), "aaaa")) {
		t.Fatal("same inputs give different image keys")
	}
	rootfs := newRootfsInputs("amd64")
	saved := Packages
	Packages = append([]string(nil), saved...)
	slices.Reverse(Packages)
	reversedKey := cacheKey(newRootfsInputs("amd64"))
	Packages = saved
	if reversedKey != cacheKey(rootfs) {
		t.Fatal("package order changes the rootfs key")
	}

	rootfsVariants := map[string]func(*rootfsInputs){
		"suite":    func(r *rootfsInputs) { r.Suite = "forky" },
		"arch":     func(r *rootfsInputs) { *r = newRootfsInputs("arm64") },
		"packages": func(r *rootfsInputs) { r.Packages = append(r.Packages[:len(r.Packages):len(r.Packages)], "strace") },
		"recipe":   func(r *rootfsInputs) { r.Recipe += "x" },
		"excludes": func(r *rootfsInputs) { r.DpkgExcludes = r.DpkgExcludes[1:] },
	}
	for name, change := range rootfsVariants {
		r := newRootfsInputs("amd64")
		change(&r)
		if cacheKey(r) == cacheKey(rootfs) {
			t.Errorf("changing %s keeps the rootfs key", name)
		}
	}

	imageVariants := map[string]func(*imageInputs){
		"rootfs":  func(i *imageInputs) { i.RootfsKey = cacheKey(newRootfsInputs("arm64")) },
		"agent":   func(i *imageInputs) { i.AgentSHA256 = "bbbb" },
		"recipe":  func(i *imageInputs) { i.Recipe += "x" },
		"cmdline": func(i *imageInputs) { i.Cmdline += " quiet" },
		"initramfs modules": func(i *imageInputs) {
			i.InitramfsModules = append(i.InitramfsModules[:len(i.InitramfsModules):len(i.InitramfsModules)], "ext4")
		},
		"root modules": func(i *imageInputs) { i.RootModules = i.RootModules[1:] },
	}
	for name, change := range imageVariants {
		i := newImageInputs(base.RootfsKey, base.AgentSHA256)
		change(&i)
		if cacheKey(i) == cacheKey(base) {
			t.Errorf("changing %s keeps the image key", name)
		}
	}
	// The agent is not an input of the rootfs: changing it must not redo mmdebstrap.
	if newImageInputs(base.RootfsKey, "bbbb").RootfsKey != base.RootfsKey {
		t.Error("agent changed the rootfs key")
	}
}

func TestLatest(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("MACHINE_CACHE", cache)
	_, err := Latest("arm64")
	if !errors.Is(err, ErrNoImage) || !strings.Contains(err.Error(), "machine image build --arch arm64") {
		t.Fatalf("Latest with empty cache = %v, want ErrNoImage naming the command", err)
	}

	images := imagesDir(cache, "arm64")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	src, _ := fakeImage(t)
	for _, key := range []string{"k1", "k2"} {
		if err := os.Rename(mustCopyDir(t, src), filepath.Join(images, key)); err != nil {
			t.Fatal(err)
		}
		if err := setLatest(images, key); err != nil {
			t.Fatal(err)
		}
		dir, err := Latest("arm64")
		if err != nil || dir != filepath.Join(images, key) {
			t.Fatalf("Latest = %q, %v; want %s", dir, err, key)
		}
	}
	// A broken latest image is reported, not returned.
	os.Remove(filepath.Join(images, "k2", "root.img"))
	if _, err := Latest("arm64"); err == nil || !strings.Contains(err.Error(), "machine image build") {
		t.Fatalf("Latest with a broken image = %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(images, ".latest.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary links left: %v", leftovers)
	}
}

func TestExportImage(t *testing.T) {
	src, m := fakeImage(t)
	out := filepath.Join(t.TempDir(), "out")
	if err := exportImage(m, src, out); err != nil {
		t.Fatal(err)
	}
	got, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(out); err != nil {
		t.Fatal(err)
	}
	// Exporting again over an existing output works (files are replaced, not appended to).
	if err := exportImage(m, src, out); err != nil {
		t.Fatal(err)
	}
}

func mustCopyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir() + "/img"
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
