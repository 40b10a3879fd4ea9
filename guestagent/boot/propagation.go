package boot

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Propagation is a mount's propagation type as /proc/self/mountinfo reports it: "shared",
// "slave", "shared+slave" or "private" (no optional fields; "unbindable" is reported as such).
type Propagation string

// MountPropagation reads mountinfo (the format of /proc/self/mountinfo) and returns the
// propagation of the mount at target; when several mounts stack there, the last one (the
// visible one) counts.
func MountPropagation(mountinfo io.Reader, target string) (Propagation, error) {
	var found Propagation
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		if len(f) < 7 || unescapeMountinfo(f[4]) != target {
			continue
		}
		var kinds []string
		for _, opt := range f[6:] {
			if opt == "-" {
				break
			}
			switch {
			case strings.HasPrefix(opt, "shared:"):
				kinds = append(kinds, "shared")
			case strings.HasPrefix(opt, "master:"):
				kinds = append(kinds, "slave")
			case opt == "unbindable":
				kinds = append(kinds, "unbindable")
			}
		}
		found = "private"
		if len(kinds) > 0 {
			found = Propagation(strings.Join(kinds, "+"))
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	if found == "" {
		return "", fmt.Errorf("mountinfo: nothing is mounted on %s", target)
	}
	return found, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space, \011, \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			var v byte
			for _, c := range s[i+1 : i+4] {
				v = v*8 + byte(c-'0')
			}
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}
