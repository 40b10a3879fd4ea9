//go:build e2e

package test

import (
	"strings"
	"testing"
)

// TestArm64Boots boots the arm64 image under emulation and checks, on that one machine:
// the guest's architecture; Rosetta's guest side, with a stand-in translator shared under
// Rosetta's tag (rosetta_test.go); and that a QEMU orphaned by a killed host agent, as on
// macOS (the parent-death signal is turned off for this machine), is ended by the next
// `machine start` (which boots again, with Rosetta registered again) and by `stop --force`.
func TestArm64Boots(t *testing.T) {
	if hostArch() != "amd64" {
		t.Skip("the arm64 emulation check runs on amd64 hosts")
	}
	const name = "e2e-arm64"
	defer dumpLogs(t, name)
	standIn := rosettaStandIn(t)
	// Only this test's host agents inherit it; TestMachine checks the parent-death signal.
	t.Setenv("MACHINE_TEST_QEMU_NO_PDEATHSIG", "1")
	machine(t, "create", name, "--arch", "arm64", "--cpus", "2", "--memory", "2GiB", "--disk", "8GiB",
		"--image", latestImage(t, "arm64"), "--share=", "--rosetta-stand-in", standIn)
	defer machine(t, "rm", "--force", name)
	out := machine(t, "start", name, "--timeout", "15m")
	t.Log(out)
	if !strings.Contains(out, "rosetta") || strings.Contains(out, "error:") {
		t.Errorf("start output lacks a clean rosetta phase:\n%s", out)
	}
	if got := strings.TrimSpace(machine(t, "shell", name, "--", "uname", "-m")); got != "aarch64" {
		t.Errorf("uname -m = %q, want aarch64", got)
	}
	t.Run("rosetta", func(t *testing.T) { checkRosetta(t, name) })
	t.Run("modules", func(t *testing.T) { checkModules(t, name) })

	t.Run("start ends a QEMU orphaned by a killed host agent", func(t *testing.T) {
		orphan := orphanQEMU(t, name)
		out := machine(t, "start", name, "--timeout", "15m")
		waitQEMUGone(t, orphan, name)
		if pid := qemuRecord(t, name); pid == orphan || !qemuAlive(pid, name) {
			t.Fatalf("after start: recorded QEMU %d (orphan %d)", pid, orphan)
		}
		if !strings.Contains(out, "rosetta") {
			t.Errorf("second boot has no rosetta phase:\n%s", out)
		}
		checkRosetta(t, name) // registered again on this boot; the image stayed on the data disk
	})
	t.Run("stop --force ends a QEMU orphaned by a killed host agent", func(t *testing.T) {
		orphan := orphanQEMU(t, name)
		out := machine(t, "stop", "--force", name)
		if !strings.Contains(out, "was killed") {
			t.Errorf("stop --force printed %q", out)
		}
		waitQEMUGone(t, orphan, name)
	})
}
