//go:build !unix && !windows

package vsockconn

import (
	"errors"
	"fmt"
	"runtime"
)

func shutdownWrite(uintptr) error {
	return fmt.Errorf("shutdown on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
