package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyTestImage copies the fixture image and changes its manifest, so it is another image.
func copyTestImage(t *testing.T, src, tag string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), tag)
	os.MkdirAll(dst, 0o755)
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		if e.Name() == "manifest.json" {
			var m map[string]any
			json.Unmarshal(b, &m)
			m["cache_key"] = tag
			b, _ = json.Marshal(m)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	return dst
}

func TestUpgradeStoppedMachine(t *testing.T) {
	img := setup(t)
	if out, err := cli(t, "create", "dev", "--arch", "amd64", "--image", img, "--share="); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	newImg := copyTestImage(t, img, "new")
	out, err := cli(t, "upgrade", "dev", "--image", newImg)
	if err != nil || !strings.Contains(out, "Installed image "+newImg) || !strings.Contains(out, "next `machine start dev`") {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	out, _ = cli(t, "status", "dev")
	if !strings.Contains(out, "Image:") || !strings.Contains(out, newImg) || !strings.Contains(out, "Upgrade:") || !strings.Contains(out, "pending") {
		t.Errorf("status after upgrade:\n%s", out)
	}
	var st struct {
		Image   struct{ Source string }
		Upgrade struct {
			State string
			From  struct{ Source string }
		}
	}
	out, _ = cli(t, "status", "dev", "--format", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Image.Source != newImg || st.Upgrade.State != "pending" || st.Upgrade.From.Source != img {
		t.Errorf("status json %+v (%v):\n%s", st, err, out)
	}
	// The kept previous image is the original, byte for byte.
	home := os.Getenv("MACHINE_HOME")
	for _, f := range []string{"kernel", "initramfs", "root", "manifest.json"} {
		want, _ := os.ReadFile(filepath.Join(img, f))
		got, err := os.ReadFile(filepath.Join(home, "dev", "image.prev", f))
		if err != nil || string(got) != string(want) {
			t.Errorf("image.prev/%s: %v", f, err)
		}
	}
	if out, err := cli(t, "upgrade", "dev", "--image", newImg); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("upgrade to the same image: %v\n%s", err, out)
	}
	if _, err := cli(t, "upgrade", "dev", "--image", filepath.Join(img, "nope")); err == nil {
		t.Error("upgrade to a missing folder succeeded")
	}
}
