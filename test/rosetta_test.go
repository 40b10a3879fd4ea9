//go:build e2e

package test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Rosetta checks run on the arm64 machine TestArm64Boots boots (one arm64 boot is
// ~30 s under emulation). Apple's Rosetta exists only on Macs, so a stand-in takes its
// place under the same share tag: Debian's static qemu-x86_64 built for arm64, which
// runs inside the arm64 guest exactly where Rosetta would.

// rosettaStandIn returns a folder holding the stand-in as `rosetta`. It is extracted once
// from Debian's arm64 qemu-user-static package (mmdebstrap with its defaults) and cached
// outside the clone, beside the guest images.
func rosettaStandIn(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(machineCache(), "test", "rosetta-stand-in-arm64")
	if st, err := os.Stat(filepath.Join(dir, "rosetta")); err == nil && st.Mode().IsRegular() {
		return dir
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".stand-in-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	t.Logf("fetching the Rosetta stand-in (Debian's arm64 qemu-user-static) into %s", dir)
	cmd := exec.Command("mmdebstrap", "--variant=extract", "--arch=arm64", "--include=qemu-user-static", "trixie", root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap --variant=extract --arch=arm64 --include=qemu-user-static trixie: %v\n%s", err, lastLines(out, 20))
	}
	share := filepath.Join(tmp, "share")
	os.Mkdir(share, 0o755)
	b, err := os.ReadFile(filepath.Join(root, "usr/bin/qemu-x86_64"))
	if err != nil {
		t.Fatalf("qemu-user-static has no usr/bin/qemu-x86_64: %v", err)
	}
	if err := os.WriteFile(filepath.Join(share, "rosetta"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir) // an incomplete earlier attempt
	if err := os.Rename(share, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func machineCache() string {
	if c := os.Getenv("MACHINE_CACHE"); c != "" {
		return c
	}
	d, _ := os.UserCacheDir()
	return filepath.Join(d, "machine")
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkRosetta checks that the guest registered the share's interpreter with binfmt_misc
// and that an amd64 image runs through it.
func checkRosetta(t *testing.T, name string) {
	t.Helper()
	status := machine(t, "shell", name, "--", "cat", "/proc/sys/fs/binfmt_misc/rosetta")
	interp := ""
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "interpreter "); ok {
			interp = v
		}
	}
	if !strings.HasPrefix(status, "enabled\n") || !strings.HasSuffix(interp, "/rosetta") || !strings.Contains(status, "flags: OCF\n") ||
		!strings.Contains(status, "magic 7f454c4602010100000000000000000002003e00\n") {
		t.Fatalf("binfmt_misc entry:\n%s", status)
	}
	ctx := "machine-" + name
	if !strings.Contains(docker(t, ctx, "", "images", "--format", "{{.Repository}}:{{.Tag}}"), "busybox:amd64") {
		// The host's busybox-static is amd64: the image holds amd64 programs only.
		docker(t, ctx, string(busyboxRootfs(t)), "import", "--platform", "linux/amd64", "-", "busybox:amd64")
	}
	if arch := strings.TrimSpace(docker(t, ctx, "", "image", "inspect", "--format", "{{.Architecture}}", "busybox:amd64")); arch != "amd64" {
		t.Fatalf("busybox:amd64 is %q", arch)
	}
	// F (fix binary): the kernel opened the interpreter at registration, so the container
	// runs amd64 programs without the interpreter in its own filesystem.
	// Detached, then waited for and read from its log: the check is about the program, not
	// about attaching to a container under two layers of emulation.
	id := strings.TrimSpace(docker(t, ctx, "", "run", "-d", "--platform", "linux/amd64", "busybox:amd64", "sh", "-c",
		"uname -m; if [ -e "+interp+" ]; then echo interpreter visible; else echo interpreter hidden; fi"))
	defer docker(t, ctx, "", "rm", "-f", id)
	if code := strings.TrimSpace(docker(t, ctx, "", "wait", id)); code != "0" {
		t.Fatalf("amd64 container exited %s: %s", code, docker(t, ctx, "", "logs", id))
	}
	out := docker(t, ctx, "", "logs", id)
	if out != "x86_64\ninterpreter hidden\n" {
		t.Fatalf("amd64 container printed %q, want x86_64 and the interpreter hidden", out)
	}
}

// qemuRecord reads the QEMU process the host agent recorded for a machine.
func qemuRecord(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.home, name, "qemu.pid"))
	if err != nil {
		t.Fatalf("no QEMU record: %v", err)
	}
	var r struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Pid <= 0 {
		t.Fatalf("QEMU record %q: %v", b, err)
	}
	return r.Pid
}

// qemuAlive reports whether pid runs (not a zombie) with name's QEMU command line.
func qemuAlive(pid int, name string) bool {
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || !strings.Contains(string(cmdline), "machine-"+name+"\x00") {
		return false
	}
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "State:"); ok {
			return !strings.HasPrefix(strings.TrimSpace(v), "Z")
		}
	}
	return false
}

// orphanQEMU SIGKILLs the machine's host agent (started with the parent-death signal off,
// as on macOS) and returns the pid of the QEMU it leaves running.
func orphanQEMU(t *testing.T, name string) int {
	t.Helper()
	qpid := qemuRecord(t, name)
	p, _ := os.FindProcess(readPidFile(t, name))
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); strings.TrimSpace(machine(t, "status", name, "--format", "{{.State}}")) != "stopped"; {
		if time.Now().After(deadline) {
			t.Fatal("machine still reported running after its host agent was killed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !qemuAlive(qpid, name) {
		t.Fatalf("QEMU (pid %d) died with its host agent although the parent-death signal was off: the test cannot orphan it", qpid)
	}
	return qpid
}

// waitQEMUGone fails unless pid is gone: the command that ended it returns only after.
func waitQEMUGone(t *testing.T, pid int, name string) {
	t.Helper()
	if qemuAlive(pid, name) {
		t.Fatalf("the orphaned QEMU (pid %d) still runs", pid)
	}
}
