package boot

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeBinfmt makes a folder standing in for a mounted binfmt_misc, with an interpreter.
func fakeBinfmt(t *testing.T) (dir, interp string) {
	t.Helper()
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "register"), nil, 0o200)
	interp = filepath.Join(t.TempDir(), "rosetta")
	os.WriteFile(interp, []byte("#!interp"), 0o755)
	return dir, interp
}

// kernelStatus is what the kernel prints in an entry file for BinfmtRule(name, interp).
func kernelStatus(interp string) string {
	return "enabled\ninterpreter " + interp + "\nflags: OCF\noffset 0\n" +
		"magic 7f454c4602010100000000000000000002003e00\n" +
		"mask fffffffffffefe00fffffffffffffffffeffffff\n"
}

func TestBinfmtRule(t *testing.T) {
	got := BinfmtRule("rosetta", "/mnt/rosetta/rosetta")
	want := `:rosetta:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:` +
		`\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/mnt/rosetta/rosetta:OCF`
	if got != want {
		t.Fatalf("BinfmtRule =\n%s\nwant\n%s", got, want)
	}
	// 20 bytes of magic and mask, as the kernel requires them to be the same size.
	if m, k := unescapeHex(x86ELFMagic), unescapeHex(x86ELFMask); len(m) != 20 || len(k) != 20 {
		t.Errorf("magic %d bytes, mask %d bytes; want 20 each", len(m), len(k))
	}
}

// matchesX86 applies the rule's magic and mask the way binfmt_misc does.
func matchesX86(header []byte) bool {
	magic, mask := unescapeHex(x86ELFMagic), unescapeHex(x86ELFMask)
	if len(header) < len(magic) {
		return false
	}
	for i := range magic {
		if (header[i]^magic[i])&mask[i] != 0 {
			return false
		}
	}
	return true
}

func TestX86MagicMatchesOnlyX86_64Programs(t *testing.T) {
	elf := func(class, data, osabi byte, etype, machine uint16) []byte {
		h := make([]byte, 64)
		copy(h, "\x7fELF")
		h[4], h[5], h[6], h[7] = class, data, 1, osabi
		binary.LittleEndian.PutUint16(h[16:], etype)
		binary.LittleEndian.PutUint16(h[18:], machine)
		return h
	}
	for _, tc := range []struct {
		name   string
		header []byte
		want   bool
	}{
		{"x86_64 executable", elf(2, 1, 0, 2, 0x3e), true},
		{"x86_64 position-independent", elf(2, 1, 0, 3, 0x3e), true},
		{"x86_64 GNU/Linux OS ABI", elf(2, 1, 3, 2, 0x3e), true},
		{"arm64", elf(2, 1, 0, 3, 0xb7), false},
		{"i386", elf(1, 1, 0, 2, 0x03), false},
		{"x86_64 shared object header with a core type", elf(2, 1, 0, 4, 0x3e), false},
		{"a script", []byte("#!/bin/sh\necho hello world, not an ELF\n"), false},
	} {
		if got := matchesX86(tc.header); got != tc.want {
			t.Errorf("%s: matches %v, want %v", tc.name, got, tc.want)
		}
	}
	if runtime.GOARCH == "amd64" && runtime.GOOS == "linux" {
		f, err := os.Open(os.Args[0]) // this test binary is an x86_64 ELF program
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := make([]byte, 20)
		io.ReadFull(f, h)
		if !matchesX86(h) {
			t.Errorf("the test binary's header %x does not match", h)
		}
	}
}

func TestRegisterX86InterpreterWritesTheRule(t *testing.T) {
	dir, interp := fakeBinfmt(t)
	registered, err := RegisterX86Interpreter(dir, "rosetta", interp)
	if err != nil || !registered {
		t.Fatalf("RegisterX86Interpreter = %v, %v", registered, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "register"))
	if string(b) != BinfmtRule("rosetta", interp) {
		t.Errorf("register got %q", b)
	}
}

func TestRegisterX86InterpreterIsIdempotent(t *testing.T) {
	dir, interp := fakeBinfmt(t)
	os.WriteFile(filepath.Join(dir, "rosetta"), []byte(kernelStatus(interp)), 0o644)
	registered, err := RegisterX86Interpreter(dir, "rosetta", interp)
	if err != nil || registered {
		t.Fatalf("RegisterX86Interpreter = %v, %v: want the existing entry kept", registered, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "register")); len(b) != 0 {
		t.Errorf("registered again: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rosetta")); string(b) != kernelStatus(interp) {
		t.Errorf("entry changed: %q", b)
	}
}

func TestRegisterX86InterpreterReplacesAnotherEntry(t *testing.T) {
	for name, status := range map[string]string{
		"other interpreter": kernelStatus("/usr/bin/qemu-x86_64"),
		"disabled":          strings.Replace(kernelStatus("X"), "enabled", "disabled", 1),
		"no F flag":         strings.Replace(kernelStatus("X"), "flags: OCF", "flags: ", 1),
		"other mask":        strings.Replace(kernelStatus("X"), "mask fffffffffffefe00", "mask fffffffffffefefc", 1),
		"other magic":       strings.Replace(kernelStatus("X"), "02003e00", "0200b700", 1),
	} {
		t.Run(name, func(t *testing.T) {
			dir, interp := fakeBinfmt(t)
			status = strings.ReplaceAll(status, "interpreter X", "interpreter "+interp)
			os.WriteFile(filepath.Join(dir, "rosetta"), []byte(status), 0o644)
			registered, err := RegisterX86Interpreter(dir, "rosetta", interp)
			if err != nil || !registered {
				t.Fatalf("RegisterX86Interpreter = %v, %v", registered, err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "rosetta")); !strings.HasPrefix(string(b), "-1") {
				t.Errorf("old entry not removed (want -1 written to it): %q", b)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "register")); string(b) != BinfmtRule("rosetta", interp) {
				t.Errorf("register got %q", b)
			}
		})
	}
}

func TestRegisterX86InterpreterErrors(t *testing.T) {
	t.Run("no interpreter", func(t *testing.T) {
		dir, _ := fakeBinfmt(t)
		missing := filepath.Join(t.TempDir(), "rosetta")
		_, err := RegisterX86Interpreter(dir, "rosetta", missing)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("err = %v, want one naming %s", err, missing)
		}
	})
	t.Run("interpreter not executable", func(t *testing.T) {
		dir, interp := fakeBinfmt(t)
		os.Chmod(interp, 0o644)
		_, err := RegisterX86Interpreter(dir, "rosetta", interp)
		if err == nil || !strings.Contains(err.Error(), "not an executable") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("binfmt_misc not mounted", func(t *testing.T) {
		_, interp := fakeBinfmt(t)
		dir := t.TempDir()
		_, err := RegisterX86Interpreter(dir, "rosetta", interp)
		if err == nil || !strings.Contains(err.Error(), "not mounted on "+dir) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("the kernel refuses the rule", func(t *testing.T) {
		dir, interp := fakeBinfmt(t)
		// A register file that cannot be written stands in for the kernel's refusal.
		reg := filepath.Join(dir, "register")
		os.Remove(reg)
		os.Mkdir(reg, 0o755)
		_, err := RegisterX86Interpreter(dir, "rosetta", interp)
		if err == nil || !strings.Contains(err.Error(), "register "+interp) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("old entry cannot be removed", func(t *testing.T) {
		// A file nobody may write, root included, stands in for an entry the kernel keeps.
		const readOnly = "/proc/version"
		if _, err := os.Stat(readOnly); err != nil {
			t.Skip("needs " + readOnly)
		}
		dir, interp := fakeBinfmt(t)
		os.Symlink(readOnly, filepath.Join(dir, "rosetta"))
		_, err := RegisterX86Interpreter(dir, "rosetta", interp)
		if err == nil || !strings.Contains(err.Error(), `remove the old "rosetta" entry (Linux version`) {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "register")); len(b) != 0 {
			t.Errorf("registered over an entry it could not remove: %q", b)
		}
	})
	t.Run("entry unreadable", func(t *testing.T) {
		dir, interp := fakeBinfmt(t)
		os.Mkdir(filepath.Join(dir, "rosetta"), 0o755)
		if _, err := RegisterX86Interpreter(dir, "rosetta", interp); err == nil {
			t.Fatal("no error for an entry that cannot be read")
		}
	})
}

func TestSameEntryToleratesAMaskedMagic(t *testing.T) {
	// Some kernels print the magic with the mask applied (byte 5: 01&fe = 00).
	s := strings.Replace(kernelStatus("/r"), "magic 7f454c460201", "magic 7f454c460200", 1)
	if !sameEntry(s, "/r") {
		t.Error("a masked magic was taken for another rule")
	}
}
