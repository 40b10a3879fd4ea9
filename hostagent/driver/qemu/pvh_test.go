package qemu

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// fakeELF is a minimal 64-bit x86 ELF whose single PT_NOTE segment holds one note.
func fakeELF(noteName string, noteType uint32) []byte {
	le := binary.LittleEndian
	name := append([]byte(noteName), 0)
	for len(name)%4 != 0 {
		name = append(name, 0)
	}
	var note []byte
	note = le.AppendUint32(note, uint32(len(noteName)+1))
	note = le.AppendUint32(note, 4)
	note = le.AppendUint32(note, noteType)
	note = append(note, name...)
	note = le.AppendUint32(note, 0x1000000) // the entry address

	b := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b = le.AppendUint16(b, 2)  // ET_EXEC
	b = le.AppendUint16(b, 62) // EM_X86_64
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, 0x1000000) // entry
	b = le.AppendUint64(b, 64)        // phoff
	b = le.AppendUint64(b, 0)         // shoff
	b = le.AppendUint32(b, 0)
	b = le.AppendUint16(b, 64) // ehsize
	b = le.AppendUint16(b, 56) // phentsize
	b = le.AppendUint16(b, 1)  // phnum
	b = le.AppendUint16(b, 64) // shentsize
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 4) // PT_NOTE
	b = le.AppendUint32(b, 4) // PF_R
	b = le.AppendUint64(b, 120)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, uint64(len(note)))
	b = le.AppendUint64(b, uint64(len(note)))
	b = le.AppendUint64(b, 4)
	b = append(b, note...)
	return append(b, bytes.Repeat([]byte("kernel text "), 1000)...)
}

func zstdWithSize(t *testing.T, k []byte) []byte {
	t.Helper()
	e, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.AppendUint32(e.EncodeAll(k, nil), uint32(len(k)))
}

func gzipped(k []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(k)
	zw.Close()
	return buf.Bytes()
}

// fakeBzImage lays out a bzImage as the kernel's build does: setupSects+1 sectors of setup
// code with the header, then the protected-mode code, whose payloadAt-th byte starts the
// compressed kernel.
func fakeBzImage(payload []byte, version uint16) []byte {
	const setupSects, payloadAt = 2, 700
	b := make([]byte, (setupSects+1)*512+payloadAt, (setupSects+1)*512+payloadAt+len(payload)+100)
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], version)
	binary.LittleEndian.PutUint32(b[0x248:], payloadAt)
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)))
	b = append(b, payload...)
	return append(b, make([]byte, 100)...) // the decompressor's tail, after the payload
}

func TestUnpackBzImage(t *testing.T) {
	k := fakeELF("Xen", xenNotePhys32Entry)
	for _, tc := range []struct {
		name    string
		bz      []byte
		wantErr string // "" means k comes back
	}{
		{"zstd with the size after it", fakeBzImage(zstdWithSize(t, k), 0x20f), ""},
		{"gzip", fakeBzImage(gzipped(k), 0x20f), ""},
		{"arm64 Image", fakeARM64Image(), "not a bzImage"},
		{"too short", []byte("HdrS"), "not a bzImage"},
		{"boot protocol 2.07", fakeBzImage(zstdWithSize(t, k), 0x207), "predates"},
		{"xz", fakeBzImage(append([]byte("\xfd7zXZ\x00"), make([]byte, 64)...), 0x20f), "xz-compressed"},
		{"unknown compression", fakeBzImage(make([]byte, 64), 0x20f), "unknown-compressed"},
		{"size trailer disagrees", fakeBzImage(binary.LittleEndian.AppendUint32(zstdWithSize(t, k)[:len(zstdWithSize(t, k))-4], uint32(len(k)+1)), 0x20f), "trailer says"},
		{"claims a huge kernel", fakeBzImage(binary.LittleEndian.AppendUint32(zstdWithSize(t, k)[:len(zstdWithSize(t, k))-4], 1<<31), 0x20f), "more than"},
		{"truncated zstd", fakeBzImage(binary.LittleEndian.AppendUint32(zstdWithSize(t, k)[:40], uint32(len(k))), 0x20f), "zstd payload"},
		{"not an ELF inside", fakeBzImage(zstdWithSize(t, bytes.Repeat([]byte("x"), 5000)), 0x20f), "unpacked kernel"},
		{"ELF without the PVH note", fakeBzImage(zstdWithSize(t, fakeELF("Linux", xenNotePhys32Entry)), 0x20f), errNoPVH.Error()},
		{"Xen note of another type", fakeBzImage(zstdWithSize(t, fakeELF("Xen", 17)), 0x20f), errNoPVH.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unpackBzImage(tc.bz)
			if tc.wantErr == "" {
				if err != nil || !bytes.Equal(got, k) {
					t.Fatalf("unpackBzImage: %d bytes, %v; want the %d-byte ELF", len(got), err, len(k))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestUnpackBzImagePayloadOutsideFile(t *testing.T) {
	bz := fakeBzImage(zstdWithSize(t, fakeELF("Xen", xenNotePhys32Entry)), 0x20f)
	binary.LittleEndian.PutUint32(bz[0x24c:], uint32(len(bz)))
	if _, err := unpackBzImage(bz); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("err = %v", err)
	}
}

func fakeARM64Image() []byte {
	b := make([]byte, 4096)
	copy(b[56:], "ARM\x64")
	return b
}

func TestPVHKernelCachesPerKernel(t *testing.T) {
	dir := t.TempDir()
	bzPath := filepath.Join(dir, "image-kernel")
	k1 := fakeELF("Xen", xenNotePhys32Entry)
	os.WriteFile(bzPath, fakeBzImage(zstdWithSize(t, k1), 0x20f), 0o644)

	p1, err := pvhKernel(dir, bzPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p1); !bytes.Equal(got, k1) {
		t.Fatalf("%s does not hold the unpacked kernel", p1)
	}
	// A second boot reuses the file: mark it and see the mark survive.
	os.WriteFile(p1, []byte("reused"), 0o600)
	if p, err := pvhKernel(dir, bzPath); err != nil || p != p1 {
		t.Fatalf("second call: %q, %v; want %q", p, err, p1)
	}
	if got, _ := os.ReadFile(p1); string(got) != "reused" {
		t.Fatal("the cached kernel was unpacked again")
	}

	// A new kernel (an image upgrade) gets its own file and the old one goes.
	k2 := append(fakeELF("Xen", xenNotePhys32Entry), "v2"...)
	os.WriteFile(bzPath, fakeBzImage(gzipped(k2), 0x20f), 0o644)
	p2, err := pvhKernel(dir, bzPath)
	if err != nil || p2 == p1 {
		t.Fatalf("new kernel: %q, %v", p2, err)
	}
	if got, _ := os.ReadFile(p2); !bytes.Equal(got, k2) {
		t.Fatal("new kernel not unpacked")
	}
	if _, err := os.Stat(p1); !os.IsNotExist(err) {
		t.Fatalf("the old kernel's ELF is still there: %v", err)
	}

	// A kernel without a PVH entry leaves nothing behind and keeps the image's file.
	bad := fakeBzImage(zstdWithSize(t, fakeELF("Linux", 1)), 0x20f)
	os.WriteFile(bzPath, bad, 0o644)
	if _, err := pvhKernel(dir, bzPath); err == nil || !strings.Contains(err.Error(), bzPath) {
		t.Fatalf("err = %v, want one naming %s", err, bzPath)
	}
	if got, _ := os.ReadFile(bzPath); !bytes.Equal(got, bad) {
		t.Fatal("the image's kernel was changed")
	}
	left, _ := filepath.Glob(filepath.Join(dir, pvhPrefix+"*"))
	if len(left) != 1 || left[0] != p2 {
		t.Fatalf("files left: %v", left)
	}
}
