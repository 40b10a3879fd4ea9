//go:build e2e

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machine-run/machine/hostagent/driver/qemu"
)

// testShareCoherence checks that a running container and the host see each other's changes
// to a bind-mounted shared folder at once: new, rewritten (another size) and deleted files,
// a file that was looked up before it existed (a cached "no such file" would hide it), a
// new folder, and an append from the container. 9p cache modes that keep attributes or
// names in the guest break exactly these.
func testShareCoherence(t testing.TB, ctxName string) {
	src := filepath.Join(env.shared, "coherence")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	docker(t, ctxName, "", "run", "-d", "--name", "coherence", "-v", src+":/src", "busybox:e2e", "sleep", "3600")
	defer docker(t, ctxName, "", "rm", "-f", "coherence")
	sh := func(script string) string {
		return docker(t, ctxName, "", "exec", "coherence", "sh", "-c", script)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const exists = "if [ -e /src/c.txt ]; then echo yes; else echo no; fi"
	if got := sh(exists); got != "no\n" {
		t.Fatalf("before the host wrote it, the container sees c.txt: %q", got)
	}
	write("c.txt", "one\n")
	if got := sh("cat /src/c.txt"); got != "one\n" {
		t.Errorf("a file the host just made (looked up before): container read %q, want %q", got, "one\n")
	}
	write("c.txt", "two, longer\n")
	if got := sh("cat /src/c.txt"); got != "two, longer\n" {
		t.Errorf("a file the host rewrote with another size: container read %q", got)
	}
	if err := os.Remove(filepath.Join(src, "c.txt")); err != nil {
		t.Fatal(err)
	}
	if got := sh(exists); got != "no\n" {
		t.Errorf("a file the host deleted is still seen by the container: %q", got)
	}
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("sub/new.txt", "x")
	if got := sh("ls /src/sub"); got != "new.txt\n" {
		t.Errorf("a folder and file the host made: container lists %q", got)
	}
	sh("echo from the container > /src/back.txt")
	sh("echo appended >> /src/back.txt")
	if b, _ := os.ReadFile(filepath.Join(src, "back.txt")); string(b) != "from the container\nappended\n" {
		t.Errorf("host read %q after the container wrote and appended", b)
	}
	// A host append to a file the container has read: its size must not come from a cache.
	write("log.txt", "1\n")
	sh("cat /src/log.txt > /dev/null")
	f, err := os.OpenFile(filepath.Join(src, "log.txt"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("2\n")
	f.Close()
	if got := sh("cat /src/log.txt"); got != "1\n2\n" {
		t.Errorf("after a host append the container read %q", got)
	}
}

// TestVirtiofsShares boots a machine whose share is served by virtiofsd (named explicitly:
// under TCG the driver keeps 9p by default) and checks the share end to end: the start
// reports virtiofs, a container bind-mounts it, and host and container see each other's
// changes at once. The guest mounts it as it mounts Apple's virtiofs shares under vz.
func TestVirtiofsShares(t *testing.T) {
	bin := qemu.FindVirtiofsd()
	if bin == "" {
		t.Skip("no Rust virtiofsd on this host (scripts/install-deps.sh installs one)")
	}
	const name, ctxName = "vfs", "machine-vfs"
	machine(t, "create", name, "--cpus", "2", "--memory", "2GiB", "--disk", "4GiB", "--image", latestImage(t, "amd64"), "--share", env.shared)
	defer machine(t, "rm", "--force", name)
	t.Setenv("MACHINE_VIRTIOFSD", bin)
	out := machine(t, "start", name)
	if !strings.Contains(out, "=virtiofs:"+env.shared) {
		t.Fatalf("start with MACHINE_VIRTIOFSD=%s did not mount the share with virtiofs:\n%s", bin, out)
	}
	docker(t, ctxName, string(busyboxRootfs(t)), "import", "--change", `CMD ["/bin/sh"]`, "-", "busybox:e2e")
	testShareCoherence(t, ctxName)
	machine(t, "stop", name)
	if out, err := exec.Command("pgrep", "-f", "virtiofsd.*"+filepath.Join(env.home, name)).Output(); err == nil {
		t.Errorf("virtiofsd still runs after the machine stopped: %s", out)
	}
}
