package store

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestPrivateDirSDDL(t *testing.T) {
	tests := []struct{ sid, want string }{
		{"S-1-5-21-3623811015-3361044348-30300820-1013", "D:P(A;OICI;FA;;;S-1-5-21-3623811015-3361044348-30300820-1013)"},
		{"S-1-12-1-4121230321-1150429430-2166394506-3839240440", "D:P(A;OICI;FA;;;S-1-12-1-4121230321-1150429430-2166394506-3839240440)"},
		{"", ""},
		{"BU", ""},
		{"S-1-5-21-1)(A;OICI;FA;;;WD", ""},
		{"S-1-5-", ""},
	}
	for _, tt := range tests {
		got, err := privateDirSDDL(tt.sid)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("privateDirSDDL(%q) = %q, %v; want %q", tt.sid, got, err, tt.want)
		}
	}
}

func TestOpenCreatesPrivateHome(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix modes")
	}
	home := filepath.Join(t.TempDir(), "a", "machine")
	t.Setenv("MACHINE_HOME", home)
	if _, err := Open(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(home)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("new home has mode %o: others can read it", perm)
	}
}

func TestProtectDirTightensUnixMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix modes")
	}
	dir := filepath.Join(t.TempDir(), "m")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask did
	if err := protectDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(dir)
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("mode %o after protectDir, want 700", perm)
	}
	if err := protectDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("protectDir of a missing folder succeeded")
	}
}
