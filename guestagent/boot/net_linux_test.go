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
