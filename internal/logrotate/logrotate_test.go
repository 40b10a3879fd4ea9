package logrotate

import (
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
