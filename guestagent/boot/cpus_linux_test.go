package boot

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOnlineCPUs(t *testing.T) {
	root := t.TempDir()
	mk := func(cpu, online string) {
		d := filepath.Join(root, cpu)
		os.MkdirAll(d, 0o755)
		if online != "" {
			os.WriteFile(filepath.Join(d, "online"), []byte(online+"\n"), 0o644)
		}
	}
	mk("cpu0", "") // the boot CPU has no online file
	mk("cpu1", "0")
	mk("cpu2", "1")
	mk("cpu3", "0")
	os.MkdirAll(filepath.Join(root, "cpufreq"), 0o755) // not a CPU
	online, brought, err := OnlineCPUs(root)
	if err != nil || online != 4 || brought != 2 {
		t.Fatalf("OnlineCPUs = %d online, %d brought up, %v; want 4, 2, nil", online, brought, err)
	}
	for _, c := range []string{"cpu1", "cpu3"} {
		if b, _ := os.ReadFile(filepath.Join(root, c, "online")); string(b) != "1" {
			t.Errorf("%s/online = %q, want 1", c, b)
		}
	}
	// Nothing offline: nothing written.
	if online, brought, err := OnlineCPUs(root); online != 4 || brought != 0 || err != nil {
		t.Fatalf("second call = %d, %d, %v", online, brought, err)
	}
}

func TestPinCgroupKeys(t *testing.T) {
	root := t.TempDir()
	if err := PinCgroupKeys(root); err != nil {
		t.Fatal(err)
	}
	// A plain file keeps only the last write; the kernel's takes each "+controller".
	if b, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control")); string(b) != "+memory" {
		t.Errorf("subtree_control = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "machine.keys", "cpu.max")); string(b) != "100000000 100000" {
		t.Errorf("cpu.max = %q", b)
	}
	if err := PinCgroupKeys(root); err != nil { // the folder exists already
		t.Fatalf("second call: %v", err)
	}
	// A root where nothing can be written: every failure is reported, none panics.
	if err := PinCgroupKeys(filepath.Join(root, "missing")); err == nil {
		t.Fatal("no error for a cgroup root that does not exist")
	}
}
