//go:build !windows

package oci

import (
	"os"
	"path/filepath"
)

// syncDir makes a rename into path's folder durable.
func syncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
}
