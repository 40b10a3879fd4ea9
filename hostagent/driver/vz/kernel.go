package vz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrCompressedKernel is returned when an arm64 kernel is not an uncompressed Image, which is
// the only kind Virtualization.framework boots on Apple silicon.
var ErrCompressedKernel = errors.New("arm64 kernel is not an uncompressed Image")

// arm64ImageMagic is "ARM\x64" at offset 56 of the arm64 Image header
// (Documentation/arch/arm64/booting.rst).
var arm64ImageMagic = []byte("ARM\x64")

// checkKernel verifies that the kernel at path can be booted directly for arch.
func checkKernel(path, arch string) error {
	if arch != "arm64" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	var hdr [64]byte
	n, err := io.ReadFull(f, hdr[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("kernel %s: %w", path, err)
	}
	return checkArm64Header(path, hdr[:n])
}

func checkArm64Header(path string, hdr []byte) error {
	if len(hdr) >= 60 && bytes.Equal(hdr[56:60], arm64ImageMagic) {
		return nil
	}
	found := "no arm64 Image header"
	switch {
	case len(hdr) >= 2 && hdr[0] == 0x1f && hdr[1] == 0x8b:
		found = "gzip data (a vmlinuz)"
	case len(hdr) >= 8 && string(hdr[0:2]) == "MZ" && string(hdr[4:8]) == "zimg":
		found = "an EFI zboot compressed kernel"
	case len(hdr) >= 4 && string(hdr[0:4]) == "\x28\xb5\x2f\xfd":
		found = "zstd data"
	}
	return fmt.Errorf("kernel %s: %w (found %s); Virtualization.framework boots only the "+
		"uncompressed Image: rebuild or re-pull the machine image", path, ErrCompressedKernel, found)
}
