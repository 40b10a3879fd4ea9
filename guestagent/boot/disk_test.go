package boot

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func image(t *testing.T, size int64, patch map[int64][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range patch {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestDetectDisk(t *testing.T) {
	cases := []struct {
		name  string
		size  int64
		patch map[int64][]byte
		want  DiskKind
	}{
		{"sparse 8 GiB", 8 << 30, nil, DiskBlank},
		{"ext4 magic", 64 << 20, map[int64][]byte{1080: {0x53, 0xEF}}, DiskExt4},
		{"mbr signature", 64 << 20, map[int64][]byte{510: {0x55, 0xAA}}, DiskOther},
		{"byte at the end of the first MiB", 64 << 20, map[int64][]byte{blankProbe - 1: {1}}, DiskOther},
		{"data after the first MiB only", 64 << 20, map[int64][]byte{blankProbe: {1}}, DiskBlank},
		{"swapped magic bytes", 64 << 20, map[int64][]byte{1080: {0xEF, 0x53}}, DiskOther},
	}
	for _, c := range cases {
		got, err := DetectDisk(image(t, c.size, c.patch))
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestDetectDiskTooSmallOrMissing(t *testing.T) {
	if _, err := DetectDisk(image(t, 100, nil)); !errors.Is(err, ErrUnknownDisk) {
		t.Errorf("tiny disk: err = %v", err)
	}
	if _, err := DetectDisk(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("missing disk: no error")
	}
}

// TestDetectRealExt4 formats an image with the real mkfs.ext4 when the host has one.
func TestDetectRealExt4(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("no mkfs.ext4")
	}
	p := image(t, 32<<20, nil)
	if out, err := exec.Command(mkfs, "-q", "-F", p).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	if got, err := DetectDisk(p); err != nil || got != DiskExt4 {
		t.Fatalf("formatted image: %v, %v", got, err)
	}
}
