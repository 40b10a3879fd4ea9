package vmimage

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// arm64ImageMagic is at offset 56 of an arm64 Linux "Image" (Documentation/arch/arm64/booting.rst).
var arm64ImageMagic = []byte("ARM\x64")

// ErrKernelFormat is returned when a kernel file is not in the format a hypervisor boots.
var ErrKernelFormat = errors.New("unexpected kernel format")

// isARM64Image reports whether b starts with an uncompressed arm64 Image header.
func isARM64Image(b []byte) bool {
	return len(b) >= 64 && bytes.Equal(b[56:60], arm64ImageMagic)
}

// arm64Kernel returns an uncompressed arm64 Image, which is what Apple's
// Virtualization.framework boots: data as is when it already is one, its gzip content when
// it is gzip'd (Debian's vmlinuz on some releases). Anything else is ErrKernelFormat.
func arm64Kernel(data []byte) ([]byte, error) {
	if isARM64Image(data) {
		return data, nil
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("arm64 kernel: %w", err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("arm64 kernel: gunzip: %w", err)
		}
		if isARM64Image(out) {
			return out, nil
		}
		return nil, fmt.Errorf("arm64 kernel: %w: gzip content has no arm64 Image magic", ErrKernelFormat)
	}
	return nil, fmt.Errorf("arm64 kernel: %w: neither an arm64 Image nor gzip", ErrKernelFormat)
}

// amd64Kernel checks for an x86 bzImage ("HdrS" at 0x202), which QEMU's -kernel boots.
func amd64Kernel(data []byte) ([]byte, error) {
	if len(data) < 0x206 || string(data[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("amd64 kernel: %w: no bzImage header", ErrKernelFormat)
	}
	return data, nil
}

// bootableKernel converts the packaged kernel into what the hypervisors boot for arch.
func bootableKernel(arch string, data []byte) ([]byte, error) {
	if arch == "arm64" {
		return arm64Kernel(data)
	}
	return amd64Kernel(data)
}
