package boot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

func TestWaitNICSkipsVirtualInterfaces(t *testing.T) {
	sys := t.TempDir()
	for _, n := range []string{"lo", "docker0"} {
		os.MkdirAll(filepath.Join(sys, n), 0o755)
	}
	if _, err := waitNIC(context.Background(), sys, 30*time.Millisecond); err == nil {
		t.Fatal("found a NIC among lo and a bridge")
	}
	os.MkdirAll(filepath.Join(sys, "eth1", "device"), 0o755)
	os.MkdirAll(filepath.Join(sys, "eth0", "device"), 0o755)
	if n, err := waitNIC(context.Background(), sys, time.Second); err != nil || n != "eth0" {
		t.Fatalf("nic %q, %v", n, err)
	}
}

// The forwarding NIC is never the primary one, whatever its name: the kernel may probe it
// first.
func TestWaitNICSkipsTheForwardingNIC(t *testing.T) {
	sys := t.TempDir()
	for name, mac := range map[string]string{"eth0": bootparams.ForwardNICMAC, "eth1": "52:54:00:12:34:56"} {
		os.MkdirAll(filepath.Join(sys, name, "device"), 0o755)
		os.WriteFile(filepath.Join(sys, name, "address"), []byte(mac+"\n"), 0o644)
	}
	if n, err := waitNIC(context.Background(), sys, time.Second); err != nil || n != "eth1" {
		t.Fatalf("primary NIC %q, %v; want eth1", n, err)
	}
	if !isForwardNIC(sys, "eth0") || isForwardNIC(sys, "eth1") || isForwardNIC(sys, "eth9") {
		t.Fatal("isForwardNIC does not go by the MAC address")
	}
}

func TestUserProcessesSkipsKernelThreadsAndSelf(t *testing.T) {
	got := UserProcesses("/proc")
	for _, pid := range got {
		if pid == os.Getpid() {
			t.Fatal("listed itself")
		}
		if pid == 2 {
			t.Fatal("listed kthreadd")
		}
	}
	// A fake /proc: one kernel thread, one user process with a space in its name.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "10"), 0o755)
	os.MkdirAll(filepath.Join(dir, "11"), 0o755)
	os.WriteFile(filepath.Join(dir, "10", "stat"), []byte("10 (kworker/0:1) I 2 0 0 0 -1 69238880 0 0"), 0o644)
	os.WriteFile(filepath.Join(dir, "11", "stat"), []byte("11 (my proc) S 1 11 11 0 -1 4194560 0 0"), 0o644)
	if pids := UserProcesses(dir); len(pids) != 1 || pids[0] != 11 {
		t.Fatalf("fake proc: %v, want [11]", pids)
	}
}
