package boot

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// BinfmtDir is where the kernel's binfmt_misc filesystem is mounted.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// RosettaBinfmtName is the binfmt_misc entry that hands x86_64 programs to Rosetta.
const RosettaBinfmtName = "rosetta"

// x86_64 ELF executables: "\x7fELF", 64-bit, little-endian, ELF version 1, any OS ABI, then
// e_type 2 or 3 (executable or position-independent) and e_machine 0x3e (EM_X86_64). The
// same magic and mask as Apple's instructions for Rosetta in Linux guests.
const (
	x86ELFMagic = `\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00`
	x86ELFMask  = `\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`
)

// rosettaFlags are the binfmt_misc flags of the Rosetta entry:
//   - F (fix binary): the kernel opens the interpreter once, at registration, and uses that
//     open file for every later x86_64 program. Containers have their own root filesystem in
//     which the interpreter's path does not exist; without F their amd64 programs would fail
//     to start ("no such file"), and with it they never see the file at all.
//   - O (open binary): the program is passed as an open file descriptor, so programs that
//     are executable but not readable by the user still run.
//   - C (credentials): set-user-ID programs get their credentials from the program, not the
//     interpreter (implies O).
const rosettaFlags = "OCF"

// BinfmtRule is the line written to binfmt_misc's register file for an x86_64 ELF
// interpreter under name.
func BinfmtRule(name, interpreter string) string {
	return ":" + name + ":M::" + x86ELFMagic + ":" + x86ELFMask + ":" + interpreter + ":" + rosettaFlags
}

// RegisterX86Interpreter registers interpreter for x86_64 ELF programs as entry name in dir
// (a mounted binfmt_misc). It is idempotent: an enabled entry that already names the same
// interpreter, flags, magic and mask is left alone (registered is false); any other entry
// of that name is removed and registered again.
func RegisterX86Interpreter(dir, name, interpreter string) (registered bool, err error) {
	if st, err := os.Stat(interpreter); err != nil {
		return false, fmt.Errorf("binfmt_misc: interpreter: %w", err)
	} else if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return false, fmt.Errorf("binfmt_misc: interpreter %s is not an executable file (mode %v)", interpreter, st.Mode())
	}
	register := filepath.Join(dir, "register")
	if _, err := os.Stat(register); err != nil {
		return false, fmt.Errorf("binfmt_misc is not mounted on %s: %w", dir, err)
	}
	entry := filepath.Join(dir, name)
	b, err := os.ReadFile(entry)
	switch {
	case err == nil:
		if sameEntry(string(b), interpreter) {
			return false, nil
		}
		// Another registration under our name (or disabled): writing -1 removes it.
		if err := writeControl(entry, "-1"); err != nil {
			return false, fmt.Errorf("binfmt_misc: remove the old %q entry (%s): %w", name, firstLine(b), err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("binfmt_misc: %w", err)
	}
	if err := writeControl(register, BinfmtRule(name, interpreter)); err != nil {
		return false, fmt.Errorf("binfmt_misc: register %s for x86_64 programs: %w", interpreter, err)
	}
	return true, nil
}

// writeControl writes s to a binfmt_misc control file in one write, as the kernel requires.
// The file must exist: binfmt_misc makes its files itself.
func writeControl(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(s))
	return errors.Join(werr, f.Close())
}

// sameEntry reports whether a binfmt_misc entry file (as the kernel prints it) is enabled
// and matches BinfmtRule(_, interpreter).
func sameEntry(status, interpreter string) bool {
	fields := map[string]string{}
	lines := strings.Split(strings.TrimSpace(status), "\n")
	if len(lines) == 0 || lines[0] != "enabled" {
		return false
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		fields[strings.TrimSuffix(k, ":")] = strings.TrimSpace(v)
	}
	magic, mask := unescapeHex(x86ELFMagic), unescapeHex(x86ELFMask)
	gotMagic, err1 := hex.DecodeString(fields["magic"])
	gotMask, err2 := hex.DecodeString(fields["mask"])
	return fields["interpreter"] == interpreter &&
		fields["flags"] == rosettaFlags &&
		(fields["offset"] == "" || fields["offset"] == "0") &&
		err1 == nil && err2 == nil &&
		bytes.Equal(gotMask, mask) && bytes.Equal(and(gotMagic, mask), and(magic, mask))
}

// unescapeHex decodes the \xHH escapes of a binfmt_misc magic or mask; other bytes are
// taken as they are.
func unescapeHex(s string) []byte {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if b, err := hex.DecodeString(s[i+2 : i+4]); err == nil {
				out = append(out, b[0])
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

func and(a, mask []byte) []byte {
	if len(a) != len(mask) {
		return nil
	}
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] & mask[i]
	}
	return out
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
