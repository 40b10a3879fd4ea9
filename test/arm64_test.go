//go:build e2e

package test

import (
	"strings"
	"testing"
)

// TestArm64Boots boots the arm64 image under emulation to a ready guest agent and checks the
// guest's architecture.
func TestArm64Boots(t *testing.T) {
	if hostArch() != "amd64" {
		t.Skip("the arm64 emulation check runs on amd64 hosts")
	}
	const name = "e2e-arm64"
	defer dumpLogs(t, name)
	machine(t, "create", name, "--arch", "arm64", "--cpus", "2", "--memory", "2GiB", "--disk", "8GiB", "--image", latestImage(t, "arm64"))
	defer machine(t, "rm", "--force", name)
	out := machine(t, "start", name, "--timeout", "15m")
	t.Log(out)
	if got := strings.TrimSpace(machine(t, "shell", name, "--", "uname", "-m")); got != "aarch64" {
		t.Errorf("uname -m = %q, want aarch64", got)
	}
	machine(t, "stop", name)
}
