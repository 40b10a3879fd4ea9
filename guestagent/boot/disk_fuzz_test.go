package boot

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzDetectDisk: whatever the first MiB holds, the classifier never panics, calls a disk
// blank only if it is all zero (so it never formats data), and ext4 only with the magic. It
// works on bytes (a temp file per input ran at a few hundred a second and stalled the fuzzer);
// TestDetectDisk covers the file read.
func FuzzDetectDisk(f *testing.F) {
	ext := make([]byte, 4096)
	binary.LittleEndian.PutUint16(ext[1080:], 0xEF53)
	f.Add(ext)
	f.Add(make([]byte, 4096))
	f.Add([]byte("XFSB"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, err := classifyDisk(data[:min(len(data), blankProbe)])
		switch {
		case len(data) < 2048:
			if err == nil || !errors.Is(err, ErrUnknownDisk) {
				t.Fatalf("%d bytes: %v, %v; want ErrUnknownDisk", len(data), kind, err)
			}
		case err != nil:
			t.Fatalf("classifyDisk: %v", err)
		case kind == DiskBlank && !isZero(data[:min(len(data), blankProbe)]):
			t.Fatal("non-zero content classified blank: it would be formatted")
		case kind == DiskExt4 && binary.LittleEndian.Uint16(data[1080:1082]) != 0xEF53:
			t.Fatal("ext4 without the superblock magic")
		}
	})
}
