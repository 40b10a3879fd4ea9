package boot

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

// 9p options: the 9P2000.L dialect, a large message size for throughput, and caching only
// for mmap so host-side edits are seen at once (bind mounts of source trees).
const ninePOptions = "trans=virtio,version=9p2000.L,msize=524288,cache=mmap"

// MountShares mounts each host folder at its guest path, in order, with 9p (QEMU) or, when
// the tag is not a 9p device, virtiofs (Apple vz); a read-only share is mounted read-only.
// It returns what it mounted and joins the errors of shares it could not mount; one failed
// share does not stop the others.
func MountShares(shares []bootparams.Share) (mounted []string, err error) {
	var errs []error
	for _, s := range shares {
		tag, path := s.Tag, s.GuestPath
		if !strings.HasPrefix(path, "/") {
			errs = append(errs, fmt.Errorf("share %q: guest path %q is not absolute", tag, path))
			continue
		}
		if err := os.MkdirAll(path, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("share %q: %w", tag, err))
			continue
		}
		var flags uintptr
		suffix := ""
		if s.ReadOnly {
			flags, suffix = unix.MS_RDONLY, ":ro"
		}
		err9p := unix.Mount(tag, path, "9p", flags, ninePOptions)
		if err9p == nil {
			mounted = append(mounted, tag+"=9p:"+path+suffix)
			continue
		}
		errVFS := unix.Mount(tag, path, "virtiofs", flags, "")
		if errVFS == nil {
			mounted = append(mounted, tag+"=virtiofs:"+path+suffix)
			continue
		}
		errs = append(errs, fmt.Errorf("share %q on %s: 9p: %v; virtiofs: %v", tag, path, err9p, errVFS))
	}
	return mounted, errors.Join(errs...)
}
