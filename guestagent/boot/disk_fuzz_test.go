package boot

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDetectDisk: whatever the first MiB holds, the classifier never panics, calls a disk
// blank only if it is all zero (so it never formats data), and ext4 only with the magic.
func FuzzDetectDisk(f *testing.F) {
	ext := make([]byte, 4096)
	binary.LittleEndian.PutUint16(ext[1080:], 0xEF53)
	f.Add(ext)
	f.Add(make([]byte, 4096))
	f.Add([]byte("XFSB"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "disk")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		kind, err := DetectDisk(p)
		switch {
		case len(data) < 2048:
			if err == nil || !errors.Is(err, ErrUnknownDisk) {
				t.Fatalf("%d bytes: %v, %v; want ErrUnknownDisk", len(data), kind, err)
			}
		case err != nil:
			t.Fatalf("DetectDisk: %v", err)
		case kind == DiskBlank && !isZero(data[:min(len(data), blankProbe)]):
			t.Fatal("non-zero content classified blank: it would be formatted")
		case kind == DiskExt4 && binary.LittleEndian.Uint16(data[1080:1082]) != 0xEF53:
			t.Fatal("ext4 without the superblock magic")
		}
	})
}
