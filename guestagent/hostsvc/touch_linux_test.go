package hostsvc

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TouchAttr must make the kernel emit IN_ATTRIB to watchers of the file's folder, and change
// neither the file's contents, mode nor modification time.
func TestTouchAttrEmitsInotify(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("data"), 0o640)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(f, old, old)
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	if err := TouchAttr(f); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := unix.Read(fd, buf)
	if err != nil || n < unix.SizeofInotifyEvent {
		t.Fatalf("no inotify event after TouchAttr: %d bytes, %v", n, err)
	}
	ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
	name := unix.ByteSliceToString(buf[unix.SizeofInotifyEvent : unix.SizeofInotifyEvent+int(ev.Len)])
	if ev.Mask&unix.IN_ATTRIB == 0 || name != "f" {
		t.Errorf("event mask %#x name %q, want IN_ATTRIB for f", ev.Mask, name)
	}
	fi, _ := os.Stat(f)
	b, _ := os.ReadFile(f)
	if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(old) || string(b) != "data" {
		t.Errorf("after TouchAttr: mode %v, mtime %v (was %v), contents %q", fi.Mode(), fi.ModTime(), old, b)
	}
	if err := TouchAttr(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("a missing path: %v", err)
	}
	os.Symlink("/nonexistent", filepath.Join(dir, "link"))
	if err := TouchAttr(filepath.Join(dir, "link")); err != nil {
		t.Errorf("a dangling symlink: %v, want it left alone", err)
	}
}
