package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestShareTree runs itself again in a private mount namespace (unshare(1), as root) so that
// making mounts shared changes nothing outside the test.
func TestShareTree(t *testing.T) {
	if dir := os.Getenv("BOOT_SHARETREE_DIR"); dir != "" {
		shareTreeInNamespace(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1)")
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", os.Args[0], "-test.run=^TestShareTree$", "-test.v")
	cmd.Env = append(os.Environ(), "BOOT_SHARETREE_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	t.Logf("%s", out)
}

func shareTreeInNamespace(t *testing.T, dir string) {
	top, below, later := filepath.Join(dir, "top"), filepath.Join(dir, "top", "below"), filepath.Join(dir, "top", "later")
	if err := os.MkdirAll(top, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", top, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	os.MkdirAll(below, 0o755)
	os.MkdirAll(later, 0o755)
	if err := unix.Mount("tmpfs", below, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	if p := propagation(t, top); p != "private" {
		t.Fatalf("a fresh mount in a private namespace is %q, want private", p)
	}
	if err := ShareTree(top); err != nil {
		t.Fatal(err)
	}
	// A mount made afterwards under the shared tree (as the data disk and shares are).
	if err := unix.Mount("tmpfs", later, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	for _, m := range []string{top, below, later} {
		if p := propagation(t, m); p != "shared" {
			t.Errorf("%s is %q after ShareTree, want shared", m, p)
		}
	}
	// What Docker does for an rslave bind mount succeeds now.
	dst := filepath.Join(dir, "dst")
	os.MkdirAll(dst, 0o755)
	if err := unix.Mount(below, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Mount("", dst, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		t.Fatalf("make the bind mount rslave: %v", err)
	}
	if p := propagation(t, dst); p != "slave" {
		t.Errorf("rslave bind mount is %q, want slave", p)
	}
	if err := ShareTree(filepath.Join(dir, "missing")); err == nil {
		t.Error("ShareTree of a path that does not exist succeeded")
	}
}

func propagation(t *testing.T, target string) Propagation {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := MountPropagation(f, target)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
