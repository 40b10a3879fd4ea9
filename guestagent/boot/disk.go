package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// DiskKind is what DetectDisk found on a data disk.
type DiskKind int

const (
	DiskBlank DiskKind = iota // the first MiB is all zero: safe to format
	DiskExt4                  // an ext2/3/4 superblock: mount it
	DiskOther                 // anything else: never touch it
)

func (k DiskKind) String() string {
	return [...]string{"blank", "ext4", "unknown content"}[k]
}

// blankProbe is how much of the disk must be zero for it to count as blank: partition
// tables, LVM, LUKS and every common filesystem put their signatures in the first MiB.
const blankProbe = 1 << 20

// ErrUnknownDisk is returned (wrapped) for a data disk that is neither blank nor ext4.
var ErrUnknownDisk = errors.New("data disk holds something that is neither blank nor ext4; refusing to format it")

// DetectDisk classifies the device or image at path by reading its first MiB.
func DetectDisk(path string) (DiskKind, error) {
	f, err := os.Open(path)
	if err != nil {
		return DiskOther, fmt.Errorf("data disk %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, blankProbe)
	n, err := io.ReadFull(f, buf)
	// A disk shorter than the probe is not a read error: io.EOF is a 0-byte (truncated) disk,
	// which must be reported as such below (the fuzzer found it reported as "read: EOF").
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return DiskOther, fmt.Errorf("data disk %s: read: %w", path, err)
	}
	kind, err := classifyDisk(buf[:n])
	if err != nil {
		return kind, fmt.Errorf("data disk %s: %w", path, err)
	}
	return kind, nil
}

// classifyDisk decides from a disk's first bytes (up to blankProbe) what it holds.
func classifyDisk(buf []byte) (DiskKind, error) {
	if len(buf) < 2048 {
		return DiskOther, fmt.Errorf("only %d bytes: %w", len(buf), ErrUnknownDisk)
	}
	// ext superblock at 1024; s_magic (0xEF53, little-endian) at offset 56 within it.
	if binary.LittleEndian.Uint16(buf[1080:1082]) == 0xEF53 {
		return DiskExt4, nil
	}
	if isZero(buf) {
		return DiskBlank, nil
	}
	return DiskOther, nil
}

func isZero(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
