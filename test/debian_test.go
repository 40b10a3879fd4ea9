//go:build e2e

package test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianRecipe makes the debian:wf test image: trixie's Essential set plus what the workflows
// use (useradd from passwd, python3 for the notes' web app and the redis stand-in, and
// docker-registry for the push and pull), without documentation. About 125 MB.
var debianRecipe = []string{
	"--variant=essential", "--include=passwd,python3,docker-registry",
	"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
	"--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
	"trixie",
}

// debianBase returns the path of a rootfs tarball (for `docker import`) built by debianRecipe
// with mmdebstrap and its default mirror. It is cached under $MACHINE_CACHE/test, keyed by the
// recipe and architecture, so only the first run pays for the build (about a minute).
func debianBase(t *testing.T) string {
	t.Helper()
	args := append([]string{"--quiet", "--arch=" + hostArch()}, debianRecipe...)
	sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	dir := filepath.Join(machineCache(), "test")
	path := filepath.Join(dir, "debian-wf-"+hostArch()+"-"+hex.EncodeToString(sum[:8])+".tar")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".tmp-"+filepath.Base(path))
	cmd := exec.Command("mmdebstrap", append(args, tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("%s: %v (mmdebstrap comes with scripts/install-deps.sh)\n%s", cmd, err, lastLines(out, 20))
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}
