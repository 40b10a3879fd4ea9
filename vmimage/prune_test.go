package vmimage

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPruneKeepsNewestImagesAndCurrentRootfs(t *testing.T) {
	cache := t.TempDir()
	images := imagesDir(cache, "amd64")
	base := time.Now().Add(-time.Hour)
	for i, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		d := filepath.Join(images, k)
		os.MkdirAll(d, 0o755)
		mt := base.Add(time.Duration(i) * time.Minute)
		os.Chtimes(d, mt, mt)
	}
	os.MkdirAll(filepath.Join(images, ".build-k6-x"), 0o755) // a build in progress
	rootfs := filepath.Join(cache, "rootfs", "amd64")
	os.MkdirAll(rootfs, 0o755)
	for _, f := range []string{"old.tar", "old-kernel.tar", "cur.tar", "cur-kernel.tar", ".rootfs-123.tar"} {
		os.WriteFile(filepath.Join(rootfs, f), nil, 0o644)
	}
	j := &job{arch: "amd64", cache: cache, rootfsKey: "cur", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	prune(j, "k1") // k1 is the oldest but current: it stays

	var left []string
	ents, _ := os.ReadDir(images)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := map[string]bool{".build-k6-x": true, "k1": true, "k4": true, "k5": true}
	if len(left) != len(want) {
		t.Fatalf("images left %v, want %v", left, want)
	}
	for _, n := range left {
		if !want[n] {
			t.Errorf("kept %s", n)
		}
	}
	tars, _ := filepath.Glob(filepath.Join(rootfs, "*.tar"))
	if len(tars) != 3 || filepath.Base(tars[0]) != ".rootfs-123.tar" || filepath.Base(tars[1]) != "cur-kernel.tar" || filepath.Base(tars[2]) != "cur.tar" {
		t.Errorf("tarballs left %v, want the current key's and the in-progress one", tars)
	}
}
