package vmimage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"

	"github.com/machine-run/machine/guestagent/api"
)

// lz4LegacyMagic opens an lz4 legacy frame, the lz4 format the kernel's unlz4 reads.
const lz4LegacyMagic = 0x184C2102

type cpioEntry struct {
	name       string
	mode       uint32
	rmaj, rmin uint32
	data       string
}

// readCPIO parses a newc archive independently of the writer's helpers.
func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("truncated header at %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("field %d: %v", i, err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, nameLen := field(1), field(6), field(9), field(10), field(11)
		off += 110
		name := string(b[off : off+int(nameLen)-1])
		if b[off+int(nameLen)-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		off += int(nameLen)
		align()
		data := string(b[off : off+int(size)])
		off += int(size)
		align()
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name, mode, rmaj, rmin, data})
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	steps := []error{
		c.Dir("/dev", 0o755),
		c.CharDev("dev/console", 0o600, 5, 1),
		c.File("init", 0o755, []byte("odd-length")),
		c.Symlink("bin", "usr/bin"),
		c.File("x", 0o644, nil),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := c.File("/init", 0o644, nil); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := readCPIO(t, buf.Bytes())
	want := []cpioEntry{
		{"dev", 0o040755, 0, 0, ""},
		{"dev/console", 0o020600, 5, 1, ""},
		{"init", 0o100755, 0, 0, "odd-length"},
		{"bin", 0o120777, 0, 0, "usr/bin"},
		{"x", 0o100644, 0, 0, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries:\n got %v\nwant %v", got, want)
	}

	// Cross-check with GNU cpio when the host has it.
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Log("cpio not installed; skipped the cross-check")
		return
	}
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	if got := strings.Fields(string(b)); !reflect.DeepEqual(got, []string{"dev", "dev/console", "init", "bin", "x"}) {
		t.Fatalf("cpio -t lists %v", got)
	}
}

type fakeModules map[string]string

func (f fakeModules) Module(name string) ([]byte, error) {
	if d, ok := f[name]; ok {
		return []byte(d), nil
	}
	return nil, fmt.Errorf("no module %s", name)
}
func (f fakeModules) UncompressedPath(name string) string { return "kernel/x/" + name + ".ko" }

func TestInitramfs(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "initramfs.img")
	mods := fakeModules{"virtio": "V", "virtio_blk": "VB"}
	paths, err := writeInitramfs(dst, []byte("AGENT"), "6.1-test", mods, []string{"virtio", "virtio_blk"})
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{"lib/modules/6.1-test/kernel/x/virtio.ko", "lib/modules/6.1-test/kernel/x/virtio_blk.ko"}
	if !reflect.DeepEqual(paths, wantPaths) {
		t.Fatalf("paths = %v", paths)
	}
	img, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) < 4 || binary.LittleEndian.Uint32(img) != lz4LegacyMagic {
		t.Fatalf("initramfs starts with %x, want the lz4 legacy magic the kernel unpacks", img[:min(len(img), 4)])
	}
	raw, err := io.ReadAll(lz4.NewReader(bytes.NewReader(img)))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]cpioEntry{}
	seen := map[string]bool{}
	for _, e := range readCPIO(t, raw) {
		if parent := filepath.Dir(e.name); parent != "." && !seen[parent] {
			t.Errorf("%s comes before its directory %s", e.name, parent)
		}
		seen[e.name] = true
		byName[e.name] = e
	}
	if e := byName["init"]; e.data != "AGENT" || e.mode != 0o100755 {
		t.Errorf("init = %+v", e)
	}
	if e := byName["dev/console"]; e.mode != 0o020600 || e.rmaj != 5 || e.rmin != 1 {
		t.Errorf("dev/console = %+v", e)
	}
	if e := byName[wantPaths[1]]; e.data != "VB" {
		t.Errorf("virtio_blk = %+v", e)
	}
	list := byName[strings.TrimPrefix(api.InitramfsModuleList, "/")]
	if list.data != strings.Join(wantPaths, "\n")+"\n" {
		t.Errorf("module list = %q", list.data)
	}
	for _, d := range []string{"dev", "proc", "sys", "mnt", "newroot", "run", "tmp"} {
		if byName[d].mode != 0o040755 {
			t.Errorf("directory %s missing", d)
		}
	}
}
