package vmimage

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// keepImages is how many built images per architecture the cache keeps (the newest ones).
// Machines hold their own copy of the image they boot, so older cache entries are never in use.
const keepImages = 3

// prune removes cached images of arch beyond the newest keepImages (never current) and every
// rootfs tarball not made from rootfsKey. It only logs what it cannot remove.
func prune(j *job, current string) {
	images := imagesDir(j.cache, j.arch)
	ents, err := os.ReadDir(images)
	if err != nil {
		return
	}
	type img struct {
		name string
		mod  int64
	}
	var imgs []img
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == current {
			continue
		}
		if fi, err := e.Info(); err == nil {
			imgs = append(imgs, img{e.Name(), fi.ModTime().UnixNano()})
		}
	}
	sort.Slice(imgs, func(a, b int) bool { return imgs[a].mod > imgs[b].mod })
	for i, im := range imgs {
		if i < keepImages-1 {
			continue
		}
		if err := os.RemoveAll(filepath.Join(images, im.name)); err != nil {
			j.log.Warn("image cache: prune", "image", im.name, "err", err)
		}
	}
	tars, _ := filepath.Glob(filepath.Join(j.cache, "rootfs", j.arch, "*.tar"))
	for _, t := range tars {
		if b := filepath.Base(t); strings.HasPrefix(b, j.rootfsKey) || strings.HasPrefix(b, ".") {
			continue // current, or another build's temporary file
		}
		if err := os.Remove(t); err != nil {
			j.log.Warn("image cache: prune", "tarball", t, "err", err)
		}
	}
}
