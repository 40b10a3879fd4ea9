package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRosetta(t *testing.T) {
	standIn := t.TempDir()
	os.WriteFile(filepath.Join(standIn, "rosetta"), []byte("x"), 0o755)
	notExec := t.TempDir()
	os.WriteFile(filepath.Join(notExec, "rosetta"), []byte("x"), 0o644)
	for _, tc := range []struct {
		name         string
		o            createOptions
		goos, goarch string
		want         string // "" means accepted
	}{
		{"off", createOptions{arch: "amd64", driver: "qemu"}, "linux", "amd64", ""},
		{"mac with apple silicon", createOptions{rosetta: true, arch: "arm64", driver: "vz"}, "darwin", "arm64", ""},
		{"linux host", createOptions{rosetta: true, arch: "arm64", driver: "qemu"}, "linux", "arm64", "needs a Mac with Apple silicon"},
		{"intel mac", createOptions{rosetta: true, arch: "arm64", driver: "vz"}, "darwin", "amd64", "needs a Mac with Apple silicon"},
		{"windows", createOptions{rosetta: true, arch: "arm64", driver: "qemu"}, "windows", "arm64", "this host is windows/arm64"},
		{"amd64 guest", createOptions{rosetta: true, arch: "amd64", driver: "vz"}, "darwin", "arm64", "use --arch arm64"},
		{"qemu on a mac", createOptions{rosetta: true, arch: "arm64", driver: "qemu"}, "darwin", "arm64", "use --driver vz"},
		{"stand-in", createOptions{standIn: standIn, arch: "arm64", driver: "qemu"}, "linux", "amd64", ""},
		{"stand-in with --rosetta", createOptions{standIn: standIn, rosetta: true, arch: "arm64", driver: "qemu"}, "linux", "amd64", "give one of them"},
		{"stand-in under vz", createOptions{standIn: standIn, arch: "arm64", driver: "vz"}, "darwin", "arm64", "qemu driver with an arm64 guest"},
		{"stand-in amd64", createOptions{standIn: standIn, arch: "amd64", driver: "qemu"}, "linux", "amd64", "qemu driver with an arm64 guest"},
		{"stand-in missing", createOptions{standIn: t.TempDir(), arch: "arm64", driver: "qemu"}, "linux", "amd64", "executable file named rosetta"},
		{"stand-in not executable", createOptions{standIn: notExec, arch: "arm64", driver: "qemu"}, "linux", "amd64", "executable file named rosetta"},
	} {
		err := checkRosetta(&tc.o, tc.goos, tc.goarch)
		if tc.want == "" && err != nil {
			t.Errorf("%s: %v, want accepted", tc.name, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestCreateRecordsRosettaStandIn(t *testing.T) {
	img := setup(t)
	standIn := t.TempDir()
	os.WriteFile(filepath.Join(standIn, "rosetta"), []byte("x"), 0o755)
	if _, err := cli(t, "create", "r", "--arch", "amd64", "--image", img, "--rosetta"); err == nil {
		t.Error("--rosetta accepted for an amd64 machine")
	}
	if _, err := cli(t, "create", "r", "--arch", "amd64", "--driver", "qemu", "--image", img, "--rosetta-stand-in", standIn); err == nil ||
		!strings.Contains(err.Error(), "arm64 guest") {
		t.Errorf("stand-in for an amd64 machine: %v", err)
	}
}
