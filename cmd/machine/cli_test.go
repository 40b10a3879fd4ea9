package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/machine-run/machine/vmimage"
)

// cli runs the machine command with args in a private MACHINE_HOME and docker config.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func setup(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("MACHINE_HOME", filepath.Join(home, "machines"))
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "docker"))
	img := filepath.Join(home, "image")
	os.MkdirAll(img, 0o755)
	man := vmimage.Manifest{SchemaVersion: vmimage.SchemaVersion, Arch: "amd64"}
	for _, r := range []string{vmimage.RoleKernel, vmimage.RoleInitramfs, vmimage.RoleRoot} {
		os.WriteFile(filepath.Join(img, r), []byte(r), 0o644)
		sum := sha256.Sum256([]byte(r))
		man.Files = append(man.Files, vmimage.File{Role: r, Name: r, Size: int64(len(r)), SHA256: hex.EncodeToString(sum[:])})
	}
	b, _ := json.Marshal(man)
	os.WriteFile(filepath.Join(img, vmimage.ManifestName), b, 0o644)
	return img
}

func TestCreateStatusListRemove(t *testing.T) {
	img := setup(t)
	share := t.TempDir()
	out, err := cli(t, "create", "dev", "--arch", "amd64", "--cpus", "1", "--memory", "1GiB", "--disk", "8G", "--image", img, "--share", share)
	if err != nil || !strings.Contains(out, `Created machine "dev"`) {
		t.Fatalf("create: %v\n%s", err, out)
	}
	out, err = cli(t, "status", "dev", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status json: %v\n%s", err, out)
	}
	// JSON field names are an API.
	for k, want := range map[string]any{"name": "dev", "state": "stopped", "cpus": 1.0, "memory_mib": 1024.0, "disk_gib": 8.0, "arch": "amd64"} {
		if st[k] != want {
			t.Errorf("status %s = %v, want %v", k, st[k], want)
		}
	}
	if out, _ := cli(t, "status", "dev", "--format", "{{.Name}} is {{.State}}"); strings.TrimSpace(out) != "dev is stopped" {
		t.Errorf("template status %q", out)
	}
	if out, _ := cli(t, "ls"); !strings.Contains(out, "dev") || !strings.Contains(out, "machine-dev") {
		t.Errorf("ls:\n%s", out)
	}
	if out, _ := cli(t, "docker-env", "dev"); !strings.Contains(out, "export DOCKER_HOST='unix://") {
		t.Errorf("docker-env: %q", out)
	}
	if _, err := cli(t, "shell", "dev", "--", "true"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("shell on a stopped machine: %v", err)
	}
	if out, err := cli(t, "rm", "dev"); err != nil || !strings.Contains(out, "Removed") {
		t.Fatalf("rm: %v %s", err, out)
	}
	if _, err := cli(t, "status", "dev"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("status after rm: %v", err)
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	img := setup(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "Bad_Name", "--image", img}, "invalid machine name"},
		{[]string{"create", "../x", "--image", img}, "invalid machine name"},
		{[]string{"create", "a", "--cpus", "4096", "--image", img}, "--cpus 4096"},
		{[]string{"create", "a", "--memory", "lots", "--image", img}, "--memory"},
		{[]string{"create", "a", "--disk", "1G", "--image", img}, "--disk 1GiB"},
		{[]string{"create", "a", "--driver", "hyperkit", "--image", img}, "--driver"},
		{[]string{"create", "a", "--image", filepath.Join(img, "nope")}, "not a folder"},
		{[]string{"create", "a", "--arch", "arm64", "--image", img}, "is for amd64"},
		{[]string{"create", "a", "--share", "/no/such/folder", "--image", img}, "not a folder on this host"},
	} {
		_, err := cli(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("machine %v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	if out, _ := cli(t, "ls", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("rejected creates left machines behind: %s", out)
	}
}

// TestCreateRefusesVZOffMac: --driver vz is refused at create, not accepted and failed at
// start, on a host that is not a Mac.
func TestCreateRefusesVZOffMac(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("a Mac may run vz")
	}
	img := setup(t)
	_, err := cli(t, "create", "a", "--driver", "vz", "--image", img)
	if err == nil || !strings.Contains(err.Error(), "this host runs "+runtime.GOOS) || !strings.Contains(err.Error(), "use --driver qemu") {
		t.Errorf("create --driver vz on %s: %v, want a refusal that offers --driver qemu", runtime.GOOS, err)
	}
	if out, _ := cli(t, "ls", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("refused create left a machine: %s", out)
	}
}

func TestShellArgs(t *testing.T) {
	setup(t)
	if _, err := cli(t, "shell", "a", "b", "--", "true"); err == nil || !strings.Contains(err.Error(), "too many arguments") {
		t.Errorf("two names before --: %v", err)
	}
}
