package socketlink

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func listen(t *testing.T, path string) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestLinkUnlink(t *testing.T) {
	dir := t.TempDir()
	ours := filepath.Join(dir, "machine.sock")
	listen(t, ours)
	target := filepath.Join(dir, "run", "docker.sock")
	os.MkdirAll(filepath.Dir(target), 0o755)

	plan, err := Plan(target, ours)
	if err != nil || !strings.Contains(plan, "create the symlink "+target+" -> "+ours) || !strings.Contains(plan, "write access") {
		t.Fatalf("Plan = %q, %v", plan, err)
	}
	if err := Link(target, ours); err != nil {
		t.Fatal(err)
	}
	if dest, _ := os.Readlink(target); dest != ours {
		t.Fatalf("target links to %q", dest)
	}
	if c, err := net.Dial("unix", target); err != nil {
		t.Fatalf("dial through the link: %v", err)
	} else {
		c.Close()
	}
	if err := Link(target, ours); err != nil {
		t.Errorf("second link: %v", err)
	}
	if err := Unlink(target, ours); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("target after unlink: %v", err)
	}
	if err := Unlink(target, ours); err != nil {
		t.Errorf("unlink of nothing: %v", err)
	}
}

func TestLinkRefusesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	ours := filepath.Join(dir, "machine.sock")
	listen(t, ours)

	// A live socket of another engine: refused, untouched.
	other := filepath.Join(dir, "other.sock")
	listen(t, other)
	if err := Link(other, ours); !errors.Is(err, ErrInUse) {
		t.Errorf("link over a live socket: %v, want ErrInUse", err)
	}
	if _, err := Plan(other, ours); !errors.Is(err, ErrInUse) {
		t.Errorf("plan over a live socket: %v, want ErrInUse", err)
	}
	// A link to another engine's live socket: refused too, and unlink leaves it.
	viaLink := filepath.Join(dir, "via.sock")
	os.Symlink(other, viaLink)
	if err := Link(viaLink, ours); !errors.Is(err, ErrInUse) {
		t.Errorf("link over a link to a live socket: %v", err)
	}
	if err := Unlink(viaLink, ours); !errors.Is(err, ErrNotOurs) {
		t.Errorf("unlink of another link: %v, want ErrNotOurs", err)
	}
	if dest, _ := os.Readlink(viaLink); dest != other {
		t.Error("the other link was changed")
	}
	// A regular file: never replaced.
	file := filepath.Join(dir, "file.sock")
	os.WriteFile(file, []byte("x"), 0o644)
	if err := Link(file, ours); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("link over a file: %v", err)
	}
	// A stale socket (nothing listens) and a dangling link: replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln := listen(t, stale)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if plan, err := Plan(stale, ours); err != nil || !strings.Contains(plan, "nothing answers") {
		t.Errorf("plan over a stale socket: %q, %v", plan, err)
	}
	dangling := filepath.Join(dir, "dangling.sock")
	os.Symlink(filepath.Join(dir, "gone.sock"), dangling)
	for _, p := range []string{stale, dangling} {
		if err := Link(p, ours); err != nil {
			t.Errorf("link over %s: %v", p, err)
		}
		if dest, _ := os.Readlink(p); dest != ours {
			t.Errorf("%s links to %q after link", p, dest)
		}
	}
}
