//go:build e2e

package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/vmimage"
)

// TestBootPanics measures how often the guest kernel panics under emulation (issue 11, point
// 10): MACHINE_PANIC_BOOTS boots of one machine, each starting a container with a CPU quota
// and a memory limit (the first of each in a boot makes the kernel patch the code of its
// cgroup controllers while the other vCPU runs it, where the panics seen so far were), then a
// forced stop. It counts the boots whose kernel panicked and prints each one's signature from
// the console. MACHINE_PANIC_DROP names kernel words to take off the image's command line and
// MACHINE_PANIC_ADD words to put on it, to measure without a mitigation (ADD="maxcpus=2":
// the kernel boots on both CPUs, as before qemu.EmulationSMPWords). Skipped unless
// MACHINE_PANIC_BOOTS is set (`make panics`): a
// hundred boots take about an hour here.
func TestBootPanics(t *testing.T) {
	v := os.Getenv("MACHINE_PANIC_BOOTS")
	if v == "" {
		t.Skip("set MACHINE_PANIC_BOOTS to a number of boots (make panics)")
	}
	boots, err := strconv.Atoi(v)
	if err != nil || boots < 1 {
		t.Fatalf("MACHINE_PANIC_BOOTS=%q: want a number of boots", v)
	}
	const name = "panics"
	const ctxName = "machine-panics"
	img := latestImage(t, "amd64")
	if drop, add := os.Getenv("MACHINE_PANIC_DROP"), os.Getenv("MACHINE_PANIC_ADD"); drop != "" || add != "" {
		img = imageEdited(t, img, strings.Fields(drop), strings.Fields(add))
	}
	m, err := vmimage.Load(img)
	if err != nil {
		t.Fatal(err)
	}
	machine(t, "create", name, "--cpus", "2", "--memory", "2GiB", "--image", img)
	defer run(t, 2*time.Minute, "", env.bin, "rm", "--force", name)
	panics, began, guestCmdline := 0, time.Now(), ""
	for i := 1; i <= boots; i++ {
		why := bootOnce(t, name, ctxName)
		if why == "" && guestCmdline == "" {
			// What the kernel booted with, the driver's words (maxcpus=1 under TCG) included.
			guestCmdline = strings.TrimSpace(machine(t, "shell", name, "--", "cat", "/proc/cmdline"))
		}
		if why != "" {
			panics++
			t.Logf("boot %d: the guest kernel panicked %s: %s", i, why, panicSignature(readFile(filepath.Join(machineDir(name), "serial.log"))))
		}
		if r := run(t, 2*time.Minute, "", env.bin, "stop", "--force", name); r.code != 0 {
			t.Fatalf("boot %d: stop --force: exit %d: %s", i, r.code, r.stderr)
		}
	}
	t.Logf("guest kernel panics: %d of %d boots (%.1f per 100) in %v; image's kernel command line %q; the guest's /proc/cmdline %q",
		panics, boots, 100*float64(panics)/float64(boots), time.Since(began).Round(time.Second), m.Cmdline, guestCmdline)
}

// bootOnce starts the machine and runs a container with a CPU quota and a memory limit. It
// returns "" when both worked, or when the guest kernel panicked, in which phase.
func bootOnce(t *testing.T, name, ctxName string) string {
	t.Helper()
	r := run(t, 15*time.Minute, "", env.bin, "start", name)
	if r.code != 0 {
		if crashed(t, name) {
			return "while booting"
		}
		t.Fatalf("start: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if run(t, time.Minute, "", "docker", "--context", ctxName, "image", "inspect", "busybox:e2e").code != 0 {
		if r := run(t, 5*time.Minute, string(busyboxRootfs(t)), "docker", "--context", ctxName, "import", "-", "busybox:e2e"); r.code != 0 {
			if crashed(t, name) {
				return "while importing an image"
			}
			t.Fatalf("import: exit %d: %s", r.code, r.stderr)
		}
	}
	r = run(t, 5*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "--cpus", "0.5", "--memory", "64m", "busybox:e2e", "true")
	if r.code != 0 {
		if crashed(t, name) {
			return "in the first limited container"
		}
		t.Fatalf("docker run: exit %d: %s", r.code, r.stderr)
	}
	return ""
}

// imageEdited copies the image at dir (hard links where it can) with words taken off its
// manifest's kernel command line and others added.
func imageEdited(t *testing.T, dir string, words, add []string) string {
	t.Helper()
	out := filepath.Join(env.home, "image-without")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == vmimage.ManifestName {
			continue
		}
		src, dst := filepath.Join(dir, e.Name()), filepath.Join(out, e.Name())
		if os.Link(src, dst) != nil {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(readFile(filepath.Join(dir, vmimage.ManifestName))), &raw); err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, w := range strings.Fields(raw["cmdline"].(string)) {
		drop := false
		for _, d := range words {
			drop = drop || w == d
		}
		if !drop {
			kept = append(kept, w)
		}
	}
	raw["cmdline"] = strings.Join(append(kept, add...), " ")
	b, _ := json.MarshalIndent(raw, "", "  ")
	if err := os.WriteFile(filepath.Join(out, vmimage.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// panicSignature is the console's first lines that say what failed: the oops or BUG line,
// the instruction pointer, and the panic reason.
func panicSignature(console string) string {
	var sig []string
	for _, line := range strings.Split(console, "\n") {
		for _, k := range []string{"Oops", "BUG:", "RIP:", "Kernel panic", "watchdog:"} {
			if strings.Contains(line, k) && len(sig) < 4 {
				sig = append(sig, strings.TrimSpace(line))
				break
			}
		}
	}
	if len(sig) == 0 {
		return "(no oops on the console)"
	}
	return strings.Join(sig, " | ")
}
