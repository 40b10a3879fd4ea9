package initramfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestRootFSTypeByMagic(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, patch map[int][]byte) string {
		b := make([]byte, 4096)
		for off, p := range patch {
			copy(b[off:], p)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	cases := map[string]struct {
		path string
		want string
	}{
		"squashfs": {write("sq", map[int][]byte{0: []byte("hsqs")}), "squashfs"},
		"erofs":    {write("ero", map[int][]byte{1024: {0xE2, 0xE1, 0xF5, 0xE0}}), "erofs"},
		"zeros":    {write("zero", nil), ""},
	}
	for name, c := range cases {
		got, err := RootFSType(c.path)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%s: %q, %v; want %q", name, got, err, c.want)
		}
	}
}

func TestRootFSTypeRealSquashfs(t *testing.T) {
	mk, err := exec.LookPath("mksquashfs")
	if err != nil {
		t.Skip("no mksquashfs")
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	img := filepath.Join(t.TempDir(), "root.img")
	if out, err := exec.Command(mk, src, img, "-quiet", "-noappend").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, out)
	}
	if got, err := RootFSType(img); err != nil || got != "squashfs" {
		t.Fatalf("%q, %v", got, err)
	}
}
