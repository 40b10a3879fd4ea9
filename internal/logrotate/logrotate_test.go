package logrotate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRotateKeepsTheLastBoots(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	for boot := 1; boot <= 5; boot++ {
		if err := Rotate(p, 3); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("boot %d: current log still there after rotation", boot)
		}
		os.WriteFile(p, []byte{byte('0' + boot)}, 0o600)
	}
	for n, want := range map[int]string{0: "5", 1: "4", 2: "3", 3: "2"} {
		b, err := os.ReadFile(Generation(p, n))
		if err != nil || string(b) != want {
			t.Errorf("generation %d: %q, %v; want %q", n, b, err, want)
		}
	}
	if _, err := os.Stat(Generation(p, 4)); !os.IsNotExist(err) {
		t.Error("more generations kept than asked")
	}
}

func TestRotateRefusesZero(t *testing.T) {
	if err := Rotate(filepath.Join(t.TempDir(), "x"), 0); err == nil {
		t.Error("keep 0 accepted")
	}
}

func TestWriterRotatesBySize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dockerd.log")
	// Left by an earlier boot, nearly full: the first write rotates it.
	os.WriteFile(p, []byte("old-boot-0123456789\n"), 0o600)
	w := &Writer{Path: p, MaxBytes: 24, Keep: 2}
	for i := 0; i < 7; i++ {
		if _, err := fmt.Fprintf(w, "line %d 0123456789\n", i); err != nil { // 18 bytes
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{0: "line 6 0123456789\n", 1: "line 5 0123456789\n", 2: "line 4 0123456789\n"} {
		b, err := os.ReadFile(Generation(p, n))
		if err != nil || string(b) != want {
			t.Errorf("generation %d: %q, %v; want %q", n, b, err, want)
		}
	}
	if _, err := os.Stat(Generation(p, 3)); !os.IsNotExist(err) {
		t.Error("more generations kept than asked")
	}
	// Lines that fit share a file; reopening appends.
	w = &Writer{Path: p, MaxBytes: 1 << 20, Keep: 2}
	io.WriteString(w, "a\n")
	io.WriteString(w, "b\n")
	w.Close()
	if _, err := io.WriteString(w, "c\n"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write after Close: %v, want os.ErrClosed", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "line 6 0123456789\na\nb\n" {
		t.Errorf("appended: %q", b)
	}
}
