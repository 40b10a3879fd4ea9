//go:build e2e

package test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyImage copies an image folder and lets edit change its manifest (parsed as JSON).
func copyImage(t *testing.T, src string, edit func(dir string, man map[string]any)) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "manifest.json" {
			json.Unmarshal(b, &man)
			continue
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	edit(dst, man)
	b, _ := json.Marshal(man)
	os.WriteFile(filepath.Join(dst, "manifest.json"), b, 0o644)
	return dst
}

type upgradeStatus struct {
	State string `json:"state"`
	Image struct {
		Source string `json:"source"`
	} `json:"image"`
	Upgrade *struct {
		State       string `json:"state"`
		FailedPhase string `json:"failed_phase"`
	} `json:"upgrade"`
}

func statusOf(t *testing.T, name string) upgradeStatus {
	t.Helper()
	var st upgradeStatus
	if err := json.Unmarshal([]byte(machine(t, "status", name, "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestUpgrade: a file on the data disk survives an upgrade to another image, and an upgrade
// to an image that cannot boot is rolled back, says so, and leaves the machine running the
// old image with the file intact. Boots: first start, the upgraded image, the broken image
// (a kernel panic within seconds), the old image again.
func TestUpgrade(t *testing.T) {
	const name = "upgrade"
	defer dumpLogs(t, name)
	latest := latestImage(t, "amd64")
	machine(t, "create", name, "--image", latest, "--share=")
	machine(t, "start", name)
	machine(t, "shell", name, "--", "sh", "-c", "echo kept > /mnt/data/marker && sync")

	// Another image: the same files with another manifest.
	other := copyImage(t, latest, func(_ string, man map[string]any) { man["cache_key"] = "e2e-upgrade" })
	r := run(t, 15*time.Minute, "", env.bin, "upgrade", name, "--image", other)
	if r.code == 0 || !strings.Contains(r.stderr, "--restart") {
		t.Fatalf("upgrade of a running machine without --restart: exit %d, %s", r.code, r.stderr)
	}
	r = run(t, 15*time.Minute, "", env.bin, "upgrade", name, "--image", other, "--restart")
	t.Log(r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "is ready") {
		t.Fatalf("upgrade --restart: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := strings.TrimSpace(machine(t, "shell", name, "--", "cat", "/mnt/data/marker")); got != "kept" {
		t.Fatalf("marker after upgrade: %q", got)
	}
	st := statusOf(t, name)
	if st.State != "running" || st.Image.Source != other || st.Upgrade != nil {
		t.Fatalf("status after upgrade: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(env.home, name, "image.prev")); err == nil {
		t.Error("image.prev kept after the new image booted")
	}

	// A broken image: garbage initramfs, manifest that matches it, so only the boot fails.
	broken := copyImage(t, latest, func(dir string, man map[string]any) {
		junk := make([]byte, 1<<20)
		rand.Read(junk)
		os.WriteFile(filepath.Join(dir, "initramfs.img"), junk, 0o644)
		sum := sha256.Sum256(junk)
		for _, f := range man["files"].([]any) {
			f := f.(map[string]any)
			if f["role"] == "initramfs" {
				f["size"], f["sha256"] = len(junk), fmt.Sprintf("%x", sum)
			}
		}
		man["cache_key"] = "e2e-broken"
	})
	r = run(t, 15*time.Minute, "", env.bin, "upgrade", name, "--image", broken, "--restart")
	t.Log(r.stdout, r.stderr)
	if r.code != 4 {
		t.Fatalf("upgrade to a broken image: exit %d, want 4 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"upgrade rolled back: image " + broken, "failed its first boot at phase", "back on image " + other} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(r.stdout, "is ready") {
		t.Error("the previous image was not booted after the rollback")
	}
	st = statusOf(t, name)
	if st.State != "running" || st.Image.Source != other || st.Upgrade == nil || st.Upgrade.State != "rolled-back" {
		t.Fatalf("status after rollback: %+v", st)
	}
	if out := machine(t, "status", name); !strings.Contains(out, "upgrade rolled back") {
		t.Errorf("status table does not show the rollback:\n%s", out)
	}
	if got := strings.TrimSpace(machine(t, "shell", name, "--", "cat", "/mnt/data/marker")); got != "kept" {
		t.Fatalf("marker after rollback: %q", got)
	}
	machine(t, "stop", name)
}
