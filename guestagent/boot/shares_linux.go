package boot

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// 9p options: the 9P2000.L dialect, a large message size for throughput, and caching only
// for mmap so host-side edits are seen at once (bind mounts of source trees).
const ninePOptions = "trans=virtio,version=9p2000.L,msize=524288,cache=mmap"

// MountShares mounts each host folder (tag -> guest path) with 9p (QEMU) or, when the tag is
// not a 9p device, virtiofs (Apple vz). It returns what it mounted and joins the errors of
// shares it could not mount; one failed share does not stop the others.
func MountShares(shares map[string]string) (mounted []string, err error) {
	tags := make([]string, 0, len(shares))
	for t := range shares {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	var errs []error
	for _, tag := range tags {
		path := shares[tag]
		if !strings.HasPrefix(path, "/") {
			errs = append(errs, fmt.Errorf("share %q: guest path %q is not absolute", tag, path))
			continue
		}
		if err := os.MkdirAll(path, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("share %q: %w", tag, err))
			continue
		}
		err9p := unix.Mount(tag, path, "9p", 0, ninePOptions)
		if err9p == nil {
			mounted = append(mounted, tag+"=9p:"+path)
			continue
		}
		errVFS := unix.Mount(tag, path, "virtiofs", 0, "")
		if errVFS == nil {
			mounted = append(mounted, tag+"=virtiofs:"+path)
			continue
		}
		errs = append(errs, fmt.Errorf("share %q on %s: 9p: %v; virtiofs: %v", tag, path, err9p, errVFS))
	}
	return mounted, errors.Join(errs...)
}
