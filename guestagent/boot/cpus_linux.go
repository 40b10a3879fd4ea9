package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Under multi-threaded TCG the kernel's live code patching (static keys, switched while the
// other vCPUs run the code) can leave a stale int3 that panics the guest: seen at boot in
// sched_clock_cpu when the scheduler clock is marked stable, and in the cgroup controllers'
// keys when the first container with a CPU quota or memory limit starts. The QEMU driver
// boots such guests with maxcpus=1, so every patch the kernel's own boot makes runs on one
// CPU; the guest agent pins the keys containers would flip (PinCgroupKeys) and then brings up
// the other CPUs (OnlineCPUs) before the engine starts.

// OnlineCPUs brings up every CPU under sysRoot (/sys/devices/system/cpu in the guest) that
// is present but offline (a guest booted with maxcpus=1), and returns how many CPUs are
// online afterwards and how many it brought up.
func OnlineCPUs(sysRoot string) (online, brought int, err error) {
	paths, _ := filepath.Glob(filepath.Join(sysRoot, "cpu[0-9]*"))
	var errs []error
	online = 1 // cpu0 has no online file: it cannot go offline
	for _, dir := range paths {
		f := filepath.Join(dir, "online")
		b, rerr := os.ReadFile(f)
		if rerr != nil {
			continue // cpu0, or a CPU that cannot be hot-plugged
		}
		if strings.TrimSpace(string(b)) == "1" {
			online++
			continue
		}
		if werr := os.WriteFile(f, []byte("1"), 0o644); werr != nil {
			errs = append(errs, fmt.Errorf("bring up %s: %w", filepath.Base(dir), werr))
			continue
		}
		online++
		brought++
	}
	return online, brought, errors.Join(errs...)
}

// pinControllers are the cgroup controllers whose first child cgroup switches a kernel code
// key on (and whose last one switches it off again): cpu (the scheduler's bandwidth key, once
// a quota is set: seen panicking in dequeue_entity), cpuset (checked in every page allocation:
// seen in __alloc_pages) and memory (the socket-accounting key).
var pinControllers = []string{"cpu", "cpuset", "memory"}

// PinCgroupKeys holds those keys on for the whole boot, so containers coming and going never
// patch the kernel while other CPUs run it: it enables the controllers under cgroupRoot
// (/sys/fs/cgroup) for a cgroup that lives as long as the machine, and gives it a CPU quota
// that never binds (1000 CPUs). A controller the kernel lacks is reported and skipped.
func PinCgroupKeys(cgroupRoot string) error {
	var errs []error
	for _, c := range pinControllers {
		if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+"+c), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("cgroup keys: enable the %s controller: %w", c, err))
		}
	}
	dir := filepath.Join(cgroupRoot, "machine.keys")
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return errors.Join(append(errs, fmt.Errorf("cgroup keys: %w", err))...)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte("100000000 100000"), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("cgroup keys: cpu quota: %w", err))
	}
	return errors.Join(errs...)
}
