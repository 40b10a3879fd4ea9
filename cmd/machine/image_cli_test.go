package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/vmimage/oci"
)

func machineConfig(t *testing.T, name string) *store.Config {
	t.Helper()
	s, err := store.Open()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := s.Machine(name)
	cfg, err := m.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestImageChoicePrecedence(t *testing.T) {
	img := setup(t)
	t.Setenv("MACHINE_CACHE", t.TempDir()) // nothing built, nothing pulled
	t.Setenv("MACHINE_IMAGE", "")
	create := func(name string, extra ...string) (string, error) {
		return cli(t, append([]string{"create", name, "--arch", "amd64", "--cpus", "1", "--memory", "1GiB", "--share="}, extra...)...)
	}
	if _, err := create("none"); err == nil || !strings.Contains(err.Error(), "this build has no default image; pass --image REF, set MACHINE_IMAGE") {
		t.Fatalf("create with no image anywhere: %v", err)
	}
	want, err := oci.Digest(img)
	if err != nil {
		t.Fatal(err)
	}
	// settings.json, then MACHINE_IMAGE over it, then --image over both.
	home := os.Getenv("MACHINE_HOME")
	os.MkdirAll(home, 0o700)
	os.WriteFile(filepath.Join(home, "settings.json"), []byte(`{"image": `+jsonString(img)+`}`), 0o600)
	if _, err := create("fromsettings"); err != nil {
		t.Fatalf("create with settings.json image: %v", err)
	}
	t.Setenv("MACHINE_IMAGE", filepath.Join(img, "missing"))
	if _, err := create("fromenv"); err == nil || !strings.Contains(err.Error(), "MACHINE_IMAGE") {
		t.Fatalf("MACHINE_IMAGE should win over settings.json: %v", err)
	}
	if _, err := create("fromflag", "--image", img); err != nil {
		t.Fatalf("--image should win over MACHINE_IMAGE: %v", err)
	}
	for _, n := range []string{"fromsettings", "fromflag"} {
		if cfg := machineConfig(t, n); cfg.ImageDigest != want || cfg.ImageRef != "" {
			t.Errorf("machine %s records image %q ref %q, want digest %s", n, cfg.ImageDigest, cfg.ImageRef, want)
		}
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestCreateFromReferenceAndImageCommands(t *testing.T) {
	img := setup(t)
	t.Setenv("MACHINE_CACHE", t.TempDir())
	t.Setenv("MACHINE_IMAGE", "")
	srv := httptest.NewServer(registry.New(registry.Logger(nopLog())))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/machine/image:test"

	out, err := cli(t, "image", "push", img, ref)
	if err != nil || !strings.Contains(out, "Pushed "+ref) {
		t.Fatalf("push: %v\n%s", err, out)
	}
	want, _ := oci.Digest(img)
	out, err = cli(t, "create", "dev", "--arch", "amd64", "--cpus", "1", "--memory", "1GiB", "--share=", "--image", ref)
	if err != nil || !strings.Contains(out, "Pulling "+ref) {
		t.Fatalf("create --image REF: %v\n%s", err, out)
	}
	if cfg := machineConfig(t, "dev"); cfg.ImageDigest != want || cfg.ImageRef != ref {
		t.Errorf("config records %q %q, want %s %s", cfg.ImageDigest, cfg.ImageRef, want, ref)
	}
	// ls --format json is only JSON on stdout, and names the machine.
	cmd := newRootCommand()
	var stdout, stderr strings.Builder
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"image", "ls", "--format", "json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var imgs []oci.Image
	if err := json.Unmarshal([]byte(stdout.String()), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("image ls json: %v\n%s", err, stdout.String())
	}
	if imgs[0].Digest != want || len(imgs[0].Machines) != 1 || imgs[0].Machines[0] != "dev" || imgs[0].Refs[0] != ref {
		t.Errorf("image ls: %+v", imgs[0])
	}
	if _, err := cli(t, "image", "rm", ref); err == nil || !strings.Contains(err.Error(), "by machine dev") {
		t.Fatalf("image rm of an image in use: %v", err)
	}
	if _, err := cli(t, "rm", "--force", "dev"); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, "image", "rm", ref); err != nil || !strings.Contains(out, "Removed "+want) {
		t.Fatalf("image rm: %v\n%s", err, out)
	}
}

func nopLog() *log.Logger { return log.New(io.Discard, "", 0) }
