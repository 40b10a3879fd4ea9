//go:build unix

package atomicfile

import "os"

// syncDir makes a rename durable: the folder entry is on disk after it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
