package vmimage

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeGraph is a moduleGraph from literals.
type fakeGraph struct {
	deps    map[string][]string
	soft    map[string][]string
	builtin map[string]bool
}

func (g fakeGraph) Has(n string) bool     { _, ok := g.deps[n]; return ok }
func (g fakeGraph) Builtin(n string) bool { return g.builtin[n] }
func (g fakeGraph) Info(n string) (modinfo, error) {
	return modinfo{Depends: g.deps[n], SoftPre: g.soft[n]}, nil
}

func TestResolveModules(t *testing.T) {
	g := fakeGraph{
		deps: map[string][]string{
			"virtio_ring": nil, "virtio": {"virtio_ring"},
			"virtio_pci_modern_dev": nil, "virtio_pci_legacy_dev": nil,
			"virtio_pci": {"virtio_pci_modern_dev", "virtio", "virtio_ring", "virtio_pci_legacy_dev"},
			"virtio_blk": {"virtio", "virtio_ring"},
			"ext4":       {"jbd2", "mbcache", "crc16"},
			"jbd2":       nil, "mbcache": nil,
			"nf_nat": {"nf_conntrack"}, "nf_conntrack": {"nf_defrag_ipv6", "nf_defrag_ipv4"},
			"nf_defrag_ipv6": nil, "nf_defrag_ipv4": nil,
			"a": {"b"}, "b": {"c"}, "c": {"a"},
			"d": {"missing"},
			"e": nil, "f": nil,
		},
		soft:    map[string][]string{"ext4": {"crc32c", "absent"}, "e": {"f"}, "f": {"e"}},
		builtin: map[string]bool{"crc16": true, "crc32c": true, "squashfs": true},
	}
	tests := []struct {
		name    string
		want    []string
		order   []string
		wantErr string
	}{
		{"deps first, each once", []string{"virtio_pci", "virtio_blk"},
			[]string{"virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk"}, ""},
		{"builtin skipped", []string{"squashfs", "ext4"}, []string{"jbd2", "mbcache", "ext4"}, ""},
		{"dash and underscore alike", []string{"nf-nat"}, []string{"nf_defrag_ipv6", "nf_defrag_ipv4", "nf_conntrack", "nf_nat"}, ""},
		{"requested twice", []string{"virtio", "virtio_ring", "virtio"}, []string{"virtio_ring", "virtio"}, ""},
		{"softdep present first", []string{"e"}, []string{"f", "e"}, ""},
		{"cycle", []string{"a"}, nil, "cycle: a -> b -> c -> a"},
		{"missing dependency", []string{"d"}, nil, "module missing (needed by d)"},
		{"missing wanted", []string{"nope"}, nil, "module nope: not built in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveModules(g, tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.order) {
				t.Fatalf("order = %v, want %v", got, tt.order)
			}
		})
	}
}

func TestParseSoftdep(t *testing.T) {
	got := parseSoftdepPre("pre: crc32c sha256-generic post: foo")
	if !reflect.DeepEqual(got, []string{"crc32c", "sha256_generic"}) {
		t.Fatalf("got %v", got)
	}
}

// fakeKO builds a minimal little-endian ELF64 relocatable object whose .modinfo section holds
// the given key=value strings, like a kernel module.
func fakeKO(kv ...string) []byte {
	modinfo := []byte(strings.Join(kv, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modOff := ehsize
	strOff := modOff + len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(1))     // ET_REL
	binary.Write(&b, le, uint16(62))    // EM_X86_64
	binary.Write(&b, le, uint32(1))     // version
	binary.Write(&b, le, uint64(0))     // entry
	binary.Write(&b, le, uint64(0))     // phoff
	binary.Write(&b, le, uint64(shOff)) // shoff
	binary.Write(&b, le, uint32(0))     // flags
	binary.Write(&b, le, []uint16{ehsize, 0, 0, shentsize, 3, 2})
	b.Write(modinfo)
	b.Write(shstr)
	b.Write(make([]byte, shOff-b.Len()))
	section := func(name, typ uint32, off, size int) {
		binary.Write(&b, le, []uint32{name, typ})
		binary.Write(&b, le, []uint64{0, 0, uint64(off), uint64(size)})
		binary.Write(&b, le, []uint32{0, 0})
		binary.Write(&b, le, []uint64{1, 0})
	}
	section(0, 0, 0, 0)
	section(1, 1, modOff, len(modinfo)) // .modinfo, PROGBITS
	section(10, 3, strOff, len(shstr))  // .shstrtab, STRTAB
	return b.Bytes()
}

func TestParseModinfo(t *testing.T) {
	mi, err := parseModinfo(bytes.NewReader(fakeKO("license=GPL", "depends=virtio,virtio_ring", "softdep=pre: crc32c",
		"alias=fs-9p", "name=9pnet_virtio")))
	if err != nil {
		t.Fatal(err)
	}
	want := modinfo{Depends: []string{"virtio", "virtio_ring"}, SoftPre: []string{"crc32c"}, Aliases: []string{"fs-9p"}}
	if !reflect.DeepEqual(mi, want) {
		t.Fatalf("modinfo = %+v, want %+v", mi, want)
	}
	if mi, err := parseModinfo(bytes.NewReader(fakeKO("depends="))); err != nil || len(mi.Depends) != 0 {
		t.Fatalf("empty depends = %+v, %v", mi, err)
	}
	if _, err := parseModinfo(bytes.NewReader([]byte("not an elf"))); err == nil {
		t.Fatal("garbage parsed")
	}
}

// TestModuleTree runs the resolver over a module directory laid out like a Debian kernel's.
func TestModuleTree(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	write("modules.builtin", []byte("kernel/lib/crc32c.ko\nkernel/fs/squashfs/squashfs.ko\n"))
	write("modules.alias", []byte("alias fs-overlay overlay\nalias xt_MASQUERADE xt_nat\nalias pci:v*d* virtio_pci\n"))
	write("kernel/fs/overlayfs/overlay.ko.gz", gz(fakeKO("depends=")))
	write("kernel/net/netfilter/xt_nat.ko.gz", gz(fakeKO("depends=nf_nat,x_tables")))
	write("kernel/net/netfilter/nf_nat.ko", fakeKO("depends=", "softdep=pre: crc32c"))
	write("kernel/net/netfilter/x_tables.ko.gz", gz(fakeKO("depends=")))
	write("kernel/net/bridge/bridge.ko.gz", gz(signed(fakeKO("depends="), 9)))
	tree, err := openModuleTree(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.resolve([]string{"squashfs", "xt_MASQUERADE", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nf_nat", "x_tables", "xt_nat", "overlay"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if p := tree.UncompressedPath("xt_nat"); p != "kernel/net/netfilter/xt_nat.ko" {
		t.Errorf("UncompressedPath = %q", p)
	}
	b, err := tree.Module("overlay")
	if err != nil || !bytes.Equal(b, fakeKO("depends=")) {
		t.Fatalf("Module(overlay) not decompressed: %v", err)
	}
	if b, err := tree.Module("bridge"); err != nil || !bytes.Equal(b, fakeKO("depends=")) {
		t.Fatalf("Module(bridge) kept its signature (err %v)", err)
	}
	if _, err := tree.resolve([]string{"fs-nope"}); err == nil {
		t.Fatal("unknown module resolved")
	}
}

// signed appends a module signature of sigLen bytes as the kernel's sign-file does: the
// signature, struct module_signature (its last field the signature's length, big-endian),
// then the marker.
func signed(ko []byte, sigLen int) []byte {
	b := append([]byte{}, ko...)
	b = append(b, bytes.Repeat([]byte{0xAB}, sigLen)...)
	info := make([]byte, moduleSigInfoLen)
	binary.BigEndian.PutUint32(info[moduleSigInfoLen-4:], uint32(sigLen))
	b = append(b, info...)
	return append(b, moduleSigMagic...)
}

func TestStripSignature(t *testing.T) {
	ko := fakeKO("depends=")
	badLen := signed(ko, 4)
	binary.BigEndian.PutUint32(badLen[len(badLen)-len(moduleSigMagic)-4:], uint32(len(badLen)))
	for _, tt := range []struct {
		name    string
		in      []byte
		want    []byte
		wantErr string
	}{
		{"unsigned", ko, ko, ""},
		{"signed", signed(ko, 512), ko, ""},
		{"empty signature", signed(ko, 0), ko, ""},
		{"the marker alone", []byte(moduleSigMagic), nil, "bytes before the marker"},
		{"a length past the start", badLen, nil, "bytes long in a module"},
	} {
		got, err := stripSignature(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err %v, want one saying %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: got %d bytes (err %v), want the %d-byte module", tt.name, len(got), err, len(tt.want))
		}
	}
}
