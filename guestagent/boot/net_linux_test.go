package boot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
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
