package store

import (
	"os"
	"strings"
	"testing"
)

func TestCheckDataDisk(t *testing.T) {
	s := &Store{Home: t.TempDir()}
	m, _ := s.Machine("dev")
	os.MkdirAll(m.Dir, 0o700)
	c := &Config{DiskGiB: 4}
	for _, tt := range []struct {
		name string
		size int64 // -1: no file
		want string
	}{
		{"as made", 4 << 30, ""},
		{"grown", 8 << 30, ""},
		{"missing", -1, "is missing"},
		{"empty", 0, "is empty (0 bytes)"},
		{"truncated", 1 << 20, "is 1048576 bytes, smaller than the 4 GiB"},
		{"one byte short", 4<<30 - 1, "smaller than the 4 GiB"},
	} {
		os.Remove(m.DataDisk())
		if tt.size >= 0 {
			if err := createSparse(m.DataDisk(), tt.size); err != nil {
				t.Fatal(err)
			}
		}
		err := m.CheckDataDisk(c)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), m.DataDisk())) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if tt.size >= 0 {
			if fi, err := os.Stat(m.DataDisk()); err != nil || fi.Size() != tt.size {
				t.Errorf("%s: the check changed the file: %v %v", tt.name, fi, err)
			}
		}
	}
}
