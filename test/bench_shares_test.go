//go:build e2e

package test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/hostagent/driver/qemu"
)

// fsbenchImage loads an image holding busybox and the fsbench helper into a machine.
func fsbenchImage(t testing.TB, ctxName, tag string) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed on the host (apt-get install busybox-static): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "fsbench")
	build := exec.Command("go", "build", "-o", bin, "./fsbench")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+hostArch())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fsbench: %v\n%s", err, out)
	}
	fb, _ := os.ReadFile(bin)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "proc/", "sys/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	addFile(tw, "bin/busybox", bb, 0o755)
	addFile(tw, "bin/fsbench", fb, 0o755)
	for _, a := range []string{"sh", "sleep"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	tw.Close()
	docker(t, ctxName, buf.String(), "import", "-", tag)
}

// fsFigures runs fsbench's output lines ("name value unit") into a map.
func fsFigures(out string) map[string]float64 {
	m := map[string]float64{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 3 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

// benchShares measures, in one container, the shared host folder share (bind-mounted as
// users do) against a volume on the machine's own disk: sequential write and read of a 256
// MB file, creating, stat-ing and deleting 5,000 small files, and a `git status`-like walk
// of a 20,000-file tree (made by the host in the share, and in the volume by the
// container). It prints each figure with the ratio share/disk under label (the share's
// transport) and returns the share's figures.
func benchShares(b *testing.B, ctxName, share, label string) map[string]float64 {
	b.Helper()
	fsbenchImage(b, ctxName, "fsbench:bench")
	dir, err := os.MkdirTemp(share, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	hostBin := filepath.Join(b.TempDir(), "fsbench-host")
	if out, err := exec.Command("go", "build", "-o", hostBin, "./fsbench").CombinedOutput(); err != nil {
		b.Fatalf("build fsbench: %v\n%s", err, out)
	}
	if out, err := exec.Command(hostBin, "-tree", filepath.Join(dir, "tree"), "-mktree", "20000").CombinedOutput(); err != nil {
		b.Fatalf("fsbench -mktree on the host: %v\n%s", err, out)
	}
	docker(b, ctxName, "", "volume", "create", "fsbench")
	defer func() {
		// The container goes first: a volume in use cannot be removed.
		run(b, time.Minute, "", "docker", "--context", ctxName, "rm", "-f", "fsbench")
		run(b, time.Minute, "", "docker", "--context", ctxName, "volume", "rm", "-f", "fsbench")
	}()
	// One container, started once with both mounts; each measurement is an exec in it, so a
	// slow share cannot outlast one command's timeout and figures print as they come.
	docker(b, ctxName, "", "run", "-d", "--name", "fsbench", "--privileged", "-v", dir+":/share", "-v", "fsbench:/disk", "fsbench:bench", "sleep", "86400")
	docker(b, ctxName, "", "exec", "fsbench", "fsbench", "-tree", "/disk/tree", "-mktree", "20000")
	sh, dk := map[string]float64{}, map[string]float64{}
	var notes []string
	for _, step := range []struct {
		figures map[string]float64
		args    []string
	}{
		{sh, []string{"-dir", "/share", "-files", "0"}},
		{dk, []string{"-dir", "/disk", "-files", "0"}},
		{sh, []string{"-dir", "/share", "-seq-mb", "0"}},
		{dk, []string{"-dir", "/disk", "-seq-mb", "0"}},
		{sh, []string{"-dir", "/share", "-seq-mb", "0", "-files", "0", "-tree", "/share/tree"}},
		{dk, []string{"-dir", "/disk", "-seq-mb", "0", "-files", "0", "-tree", "/disk/tree"}},
	} {
		r := run(b, time.Hour, "", "docker", append([]string{"--context", ctxName, "exec", "fsbench", "fsbench"}, step.args...)...)
		if r.code != 0 {
			b.Fatalf("fsbench %v: exit %d: %s%s", step.args, r.code, r.stdout, r.stderr)
		}
		for k, v := range fsFigures(r.stdout) {
			step.figures[k] = v
		}
		if i := strings.Index(r.stdout, "note could-not-drop-caches"); i >= 0 {
			line, _, _ := strings.Cut(r.stdout[i:], "\n")
			notes = append(notes, line)
		}
	}
	fmt.Printf("bind mount (the home share, %s) vs the machine's disk (a volume), in one container:\n", label)
	for _, row := range fsRows {
		s, d := sh[row.key], dk[row.key]
		ratio := 0.0
		if d > 0 {
			ratio = s / d
		}
		fmt.Printf("    %-46s share %9.1f  disk %9.1f %-9s share/disk %5.1f%%\n", row.label, s, d, row.unit, 100*ratio)
		b.ReportMetric(100*ratio, label+"_"+row.key+"_share/disk_%")
	}
	if len(notes) > 0 {
		fmt.Printf("    (reads may have come from the guest's cache: %s)\n", notes[0])
	}
	return sh
}

// fsRows are the figures benchShares prints, in order.
var fsRows = []struct{ key, label, unit string }{
	{"seq_write_MBps", "sequential write 256 MB (fsync)", "MB/s"},
	{"seq_read_MBps", "sequential read 256 MB (cold guest cache)", "MB/s"},
	{"create_per_s", "create 5,000 files of 100 bytes", "files/s"},
	{"stat_per_s", "stat 5,000 files", "files/s"},
	{"delete_per_s", "delete 5,000 files", "files/s"},
	{"walk_entries_per_s", "walk a 20,000-file tree (as git status)", "entries/s"},
}

// shareTransport is how a `machine start` output says the shares were mounted ("virtiofs",
// "9p"), from the shares phase ("home=virtiofs:/root").
func shareTransport(startOut string) string {
	for _, t := range []string{"virtiofs", "9p"} {
		if strings.Contains(startOut, "="+t+":/") {
			return t
		}
	}
	return "unknown transport"
}

// benchShareTransports compares the share on its two transports, one row per figure: the
// machine's own (9p under TCG; virtiofs with hardware acceleration where the host has
// virtiofsd) against the other, after a restart of the machine with MACHINE_VIRTIOFSD set
// to the host's virtiofsd or to none. Without a Rust virtiofsd only the first is measured.
func benchShareTransports(b *testing.B, name, ctxName, share, transport string) {
	b.Helper()
	figures := map[string]map[string]float64{transport: benchShares(b, ctxName, share, transport)}
	other, env := "virtiofs", qemu.FindVirtiofsd()
	if transport == "virtiofs" {
		other, env = "9p", "none"
	}
	if env == "" {
		fmt.Printf("the share on virtiofs: not measured (no Rust virtiofsd on this host)\n")
		return
	}
	machine(b, "stop", name)
	os.Setenv("MACHINE_VIRTIOFSD", env)
	out := machine(b, "start", name)
	os.Unsetenv("MACHINE_VIRTIOFSD")
	if t := shareTransport(out); t != other {
		b.Fatalf("restarted with MACHINE_VIRTIOFSD=%s, the share is on %s, want %s:\n%s", env, t, other, out)
	}
	figures[other] = benchShares(b, ctxName, share, other)
	vfs, p9 := figures["virtiofs"], figures["9p"]
	fmt.Printf("the share on virtiofs against 9p:\n")
	for _, row := range fsRows {
		ratio := 0.0
		if p9[row.key] > 0 {
			ratio = vfs[row.key] / p9[row.key]
		}
		fmt.Printf("    %-46s virtiofs %9.1f  9p %9.1f %-9s virtiofs/9p %6.2fx\n", row.label, vfs[row.key], p9[row.key], row.unit, ratio)
	}
}
