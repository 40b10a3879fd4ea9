//go:build e2e

package test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// busyboxApplets are linked in the test image; the tests use only these.
var busyboxApplets = []string{"sh", "echo", "cat", "httpd", "sleep", "ls", "mkdir", "wget", "nc", "date", "true", "uname"}

// busyboxRootfs returns a rootfs tarball (for `docker import`) with Debian's static busybox
// and the echoserver helper: no registry is needed.
func busyboxRootfs(t testing.TB) []byte {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed on the host (apt-get install busybox-static): %v", err)
	}
	udp := filepath.Join(t.TempDir(), "echoserver")
	build := exec.Command("go", "build", "-o", udp, "./echoserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+hostArch())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build echoserver: %v\n%s", err, out)
	}
	udpBin, _ := os.ReadFile(udp)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "www/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	addFile(tw, "bin/busybox", bb, 0o755)
	addFile(tw, "bin/echoserver", udpBin, 0o755)
	addFile(tw, "www/index.html", []byte("hello from the container\n"), 0o644)
	for _, a := range busyboxApplets {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	tw.Close()
	return buf.Bytes()
}

func addFile(tw *tar.Writer, name string, data []byte, mode int64) {
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data))})
	tw.Write(data)
}

// bigImageTar writes a `docker save` archive of an image whose one layer holds size bytes of
// incompressible data, tagged tag, and returns its path.
func bigImageTar(t testing.TB, tag string, size int64) string {
	t.Helper()
	dir := t.TempDir()
	layerPath := filepath.Join(dir, "layer.tar")
	lf, err := os.Create(layerPath)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(lf, h))
	tw.WriteHeader(&tar.Header{Name: "blob", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	chunk := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(chunk)) {
		for i := 0; i < len(chunk); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				chunk[i+j] = byte(v >> (8 * j))
			}
		}
		n := min(int64(len(chunk)), left)
		tw.Write(chunk[:n])
	}
	tw.Close()
	lf.Close()
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	config, _ := json.Marshal(map[string]any{
		"architecture": hostArch(), "os": "linux",
		"config": map[string]any{"Cmd": []string{"/blob"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	cs := sha256.Sum256(config)
	configName := hex.EncodeToString(cs[:]) + ".json"
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{tag}, "Layers": []string{"layer/layer.tar"}}})

	out := filepath.Join(dir, "image.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	otw := tar.NewWriter(f)
	addFile(otw, "manifest.json", manifest, 0o644)
	addFile(otw, configName, config, 0o644)
	otw.WriteHeader(&tar.Header{Name: "layer/", Typeflag: tar.TypeDir, Mode: 0o755})
	st, _ := os.Stat(layerPath)
	otw.WriteHeader(&tar.Header{Name: "layer/layer.tar", Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size()})
	lr, _ := os.Open(layerPath)
	io.Copy(otw, lr)
	lr.Close()
	os.Remove(layerPath)
	if err := otw.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
