//go:build !linux

package vmimage

import (
	"context"
	"fmt"
	"runtime"
)

func preflight(*job) error {
	return fmt.Errorf("%w (this host is %s): build on a Linux machine or in CI and copy the image directory",
		ErrUnsupportedHost, runtime.GOOS)
}

func buildImage(context.Context, *job, string) (*Manifest, error) { return nil, preflight(nil) }
