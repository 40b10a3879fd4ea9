package qemu

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/machine-run/machine/internal/atomicfile"
)

// An amd64 image ships its kernel as a bzImage, the format every x86 hypervisor boots
// (Virtualization.framework on Intel Macs among them). A bzImage is a small decompressor
// followed by the compressed kernel; under TCG that decompressor, and the relocation after
// it, run emulated and cost one to three seconds of every boot. QEMU can instead load the
// uncompressed ELF kernel and enter it at its PVH entry point (a Xen ELF note the kernel
// carries when built with CONFIG_PVH), so under TCG the driver unpacks the bzImage once,
// keeps the ELF in the machine's folder and boots that.

// pvhPrefix starts the cached ELF's file name; the rest is the bzImage's sha256, so a new
// kernel (an image upgrade) gets a new file and the old one is removed.
const pvhPrefix = "kernel-pvh-"

// maxKernelSize bounds the uncompressed kernel a bzImage may claim, so that a corrupt or
// hostile image cannot make the host agent allocate without limit.
const maxKernelSize = 512 << 20

// xenNotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY, the note holding the PVH entry point.
const xenNotePhys32Entry = 18

// payloadFormats are the compressed-kernel formats by their leading bytes
// (arch/x86/boot/compressed/Makefile builds one of them).
var payloadFormats = []struct{ magic, name string }{
	{"\x28\xb5\x2f\xfd", "zstd"},
	{"\x1f\x8b", "gzip"},
	{"\xfd7zXZ\x00", "xz"},
	{"\x02\x21\x4c\x18", "lz4"},
	{"BZh", "bzip2"},
	{"\x89LZO", "lzo"},
	{"\x5d\x00\x00", "lzma"},
}

// errNoPVH is returned for a kernel QEMU cannot enter through PVH.
var errNoPVH = errors.New("kernel has no PVH entry point")

// unpackBzImage returns the uncompressed ELF kernel inside bz, checked to have a PVH entry
// point. It reads the payload's place from the setup header (boot protocol 2.08 and later)
// and its uncompressed size from the payload's last four bytes, where the kernel's own
// decompressor reads it.
func unpackBzImage(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage (no HdrS setup header)")
	}
	if v := binary.LittleEndian.Uint16(bz[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("bzImage boot protocol %d.%02d predates the payload fields (2.08)", v>>8, v&0xff)
	}
	setupSects := int(bz[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	end := start + int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if end <= start+4 || end > len(bz) { // two uint32 fields: their sum cannot overflow a 64-bit int
		return nil, fmt.Errorf("bzImage payload [%d, %d) lies outside the file's %d bytes", start, end, len(bz))
	}
	payload := bz[start:end]
	size := int64(binary.LittleEndian.Uint32(payload[len(payload)-4:]))
	if size > maxKernelSize {
		return nil, fmt.Errorf("bzImage claims a %d-byte kernel, more than the %d this driver unpacks", size, maxKernelSize)
	}
	format := "unknown"
	for _, f := range payloadFormats {
		if bytes.HasPrefix(payload, []byte(f.magic)) {
			format = f.name
			break
		}
	}
	var out []byte
	var err error
	switch format {
	case "zstd":
		// The kernel's build appends the size after the zstd frame. It compresses with
		// --ultra -22, whose window (128 MiB) can exceed the kernel itself.
		var d *zstd.Decoder
		if d, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxKernelSize), zstd.WithDecoderConcurrency(1)); err == nil {
			out, err = d.DecodeAll(payload[:len(payload)-4], make([]byte, 0, size))
			d.Close()
		}
	case "gzip":
		// gzip's own trailer ends with the size.
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(payload)); err == nil {
			out, err = io.ReadAll(io.LimitReader(zr, size+1))
		}
	default:
		return nil, fmt.Errorf("bzImage payload is %s-compressed; this driver unpacks zstd and gzip", format)
	}
	if err != nil {
		return nil, fmt.Errorf("bzImage %s payload: %w", format, err)
	}
	if int64(len(out)) != size {
		return nil, fmt.Errorf("bzImage %s payload unpacks to %d bytes, its trailer says %d", format, len(out), size)
	}
	if err := checkPVH(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkPVH verifies that k is a 64-bit x86 ELF with a PVH entry note.
func checkPVH(k []byte) error {
	f, err := elf.NewFile(bytes.NewReader(k))
	if err != nil {
		return fmt.Errorf("unpacked kernel: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("unpacked kernel is a %v %v ELF, want ELFCLASS64 EM_X86_64", f.Class, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			return fmt.Errorf("unpacked kernel: notes: %w", err)
		}
		if hasXenNote(notes, xenNotePhys32Entry) {
			return nil
		}
	}
	return errNoPVH
}

// hasXenNote reports whether an ELF note segment holds a "Xen" note of type typ.
func hasXenNote(b []byte, typ uint32) bool {
	align := func(n uint32) int { return int((n + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, t := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
		n, d := align(namesz), align(descsz)
		if namesz > 64 || n+d > len(b)-12 {
			return false
		}
		if t == typ && strings.TrimRight(string(b[12:12+namesz]), "\x00") == "Xen" {
			return true
		}
		b = b[12+n+d:]
	}
	return false
}

// pvhKernel returns the path of the PVH-bootable ELF unpacked from the bzImage at
// bzPath, cached in dir: unpacked and written (atomically) on the first boot of each
// kernel, reused after that. Cached ELFs of other kernels are removed.
func pvhKernel(dir, bzPath string) (string, error) {
	bz, err := os.ReadFile(bzPath)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(bz)
	path := filepath.Join(dir, pvhPrefix+hex.EncodeToString(sum[:8])+".elf")
	if _, err := os.Stat(path); err != nil {
		k, err := unpackBzImage(bz)
		if err != nil {
			return "", fmt.Errorf("kernel %s: %w", bzPath, err)
		}
		if err := atomicfile.WriteFile(path, k, 0o600); err != nil {
			return "", err
		}
	}
	stale, _ := filepath.Glob(filepath.Join(dir, pvhPrefix+"*.elf"))
	for _, s := range stale {
		if s != path {
			os.Remove(s)
		}
	}
	return path, nil
}
