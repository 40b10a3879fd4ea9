package vmimage

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeImage writes three small files and their manifest into a temp dir.
func fakeImage(t *testing.T) (string, *Manifest) {
	t.Helper()
	dir := t.TempDir()
	m := &Manifest{
		SchemaVersion: SchemaVersion, Arch: "arm64", Suite: Suite, KernelRelease: "6.12.0-1-arm64",
		Cmdline: Cmdline, RootFormat: "squashfs", RootCompression: "zstd", AgentVersion: "0123456789ab",
		Engine:   EngineVersions{Dockerd: "26.1.5", Containerd: "1.7.24", Runc: "1.1.15"},
		Packages: map[string]string{"docker.io": "26.1.5+dfsg1-9"}, CacheKey: "k", RootfsKey: "r",
		InitramfsModules: []string{"lib/modules/x/virtio.ko"}, RootModules: []string{"/usr/lib/modules/x/tun.ko"},
	}
	for _, f := range [][3]string{{RoleKernel, "kernel", "KERNEL"}, {RoleInitramfs, "initramfs.img", "INITRAMFS!"}, {RoleRoot, "root.img", "ROOT"}} {
		if err := os.WriteFile(filepath.Join(dir, f[1]), []byte(f[2]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := m.addFile(dir, f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.write(dir); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func TestManifestRoundTrip(t *testing.T) {
	dir, want := fakeImage(t)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v\nwant %+v", got, want)
	}
	if err := got.Verify(dir); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p := got.Path(dir, RoleRoot); p != filepath.Join(dir, "root.img") {
		t.Errorf("Path(root) = %q", p)
	}
	if p := got.Path(dir, "nope"); p != "" {
		t.Errorf("Path(nope) = %q, want empty", p)
	}
	// sha256("KERNEL"), computed independently with sha256sum.
	if f := got.Files[0]; f.Size != 6 || f.SHA256 != "a204d4ad1de3e9b07751899e5cf4d4a3017328c41372c70fdcc8db9587bb38fb" {
		t.Errorf("kernel entry = %+v", f)
	}
}

func TestLoadFailures(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, dir string, m *Manifest)
		wantErr string
	}{
		{"no manifest", func(t *testing.T, dir string, _ *Manifest) { os.Remove(filepath.Join(dir, ManifestName)) }, "no such file"},
		{"missing file", func(t *testing.T, dir string, _ *Manifest) { os.Remove(filepath.Join(dir, "root.img")) }, "root"},
		{"size differs", func(t *testing.T, dir string, _ *Manifest) {
			os.WriteFile(filepath.Join(dir, "kernel"), []byte("KERNEL-LONGER"), 0o644)
		}, "13 bytes, manifest says 6"},
		{"schema", func(t *testing.T, dir string, m *Manifest) { m.SchemaVersion = 99; m.write(dir) }, "schema 99"},
		{"role missing", func(t *testing.T, dir string, m *Manifest) { m.Files = m.Files[:2]; m.write(dir) }, "no root file"},
		{"path escape", func(t *testing.T, dir string, m *Manifest) { m.Files[0].Name = "../kernel"; m.write(dir) }, "not a plain name"},
		{"bad json", func(t *testing.T, dir string, _ *Manifest) {
			os.WriteFile(filepath.Join(dir, ManifestName), []byte("{"), 0o644)
		}, "manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, m := fakeImage(t)
			tt.break_(t, dir, m)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyDetectsSameSizeChange(t *testing.T) {
	dir, _ := fakeImage(t)
	if err := os.WriteFile(filepath.Join(dir, "initramfs.img"), []byte("INITRAMFS?"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir) // sizes still match: Load is cheap and cannot tell
	if err != nil {
		t.Fatal(err)
	}
	err = m.Verify(dir)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "initramfs.img") {
		t.Fatalf("Verify = %v, want ErrChecksum naming initramfs.img", err)
	}
}
