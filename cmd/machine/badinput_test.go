package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Input a new user might type: each is refused with an error that names the flag or file and
// says what to do, and nothing is created.
func TestBadInputIsRefusedClearly(t *testing.T) {
	img := setup(t)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"create", "a", "--memory", "600K", "--image", img}, []string{"--memory", `"600K" is not a whole number of MiB`, "2048M"}},
		{[]string{"create", "a", "--disk", "4100M", "--image", img}, []string{"--disk", `"4100M" is not a whole number of GiB`, "64G"}},
		{[]string{"create", "a", "--memory", "99999999999999999999G", "--image", img}, []string{"--memory", "is too large"}},
		{[]string{"create", "a", "--share", "/", "--image", img}, []string{"--share", `"/"`, "system folders"}},
		{[]string{"create", "a", "--share", "/var", "--image", img}, []string{"--share", "/var", "system folders"}},
		{[]string{"ls", "--format", "yaml"}, []string{`--format "yaml"`, "table, json", "{{"}},
		{[]string{"status", "a", "--format", "yaml"}, []string{`--format "yaml"`}},
		{[]string{"start", "a", "--timeout", "0s", "--image", img}, []string{"--timeout 0s", "positive"}},
		{[]string{"start", "a", "--timeout", "-1m", "--image", img}, []string{"--timeout -1m0s", "positive"}},
	}
	if runtime.GOOS != "darwin" {
		cases = append(cases, struct {
			args []string
			want []string
		}{[]string{"create", "a", "--driver", "vz", "--image", img}, []string{"--driver vz", "macOS", "--driver qemu"}})
	}
	for _, tc := range cases {
		out, err := cli(t, tc.args...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("machine %v: %v, want an error mentioning %q\n%s", tc.args, err, w, out)
			}
		}
		if err != nil && strings.Contains(err.Error(), "strconv") {
			t.Errorf("machine %v leaks an internal error: %v", tc.args, err)
		}
	}
	if out, _ := cli(t, "ls", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("refused commands left machines behind: %s", out)
	}
}

// A machine whose config is truncated or hand-edited wrongly is shown as broken with the
// reason, not silently omitted or shown as is, and rm --force removes it.
func TestBrokenMachineIsShownAndRemovable(t *testing.T) {
	img := setup(t)
	for _, n := range []string{"trunc", "zero", "ok"} {
		if out, err := cli(t, "create", n, "--cpus", "1", "--memory", "1G", "--disk", "4G", "--image", img, "--share="); err != nil {
			t.Fatalf("create %s: %v\n%s", n, err, out)
		}
	}
	home := os.Getenv("MACHINE_HOME")
	cfg := filepath.Join(home, "trunc", "config.json")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, b[:len(b)/2], 0o600)
	cfg = filepath.Join(home, "zero", "config.json")
	b, _ = os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), `"cpus": 1`, `"cpus": 0`, 1)), 0o600)

	out, err := cli(t, "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"trunc  broken", "zero   broken", "is corrupt", "cpus 0: must be at least 1", "machine rm --force trunc"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls lacks %q:\n%s", want, out)
		}
	}
	if _, err := cli(t, "status", "zero"); err == nil || !strings.Contains(err.Error(), "cpus 0") {
		t.Errorf("status of a machine with cpus 0: %v", err)
	}
	if _, err := cli(t, "rm", "trunc"); err == nil || !strings.Contains(err.Error(), "rm --force") {
		t.Errorf("rm without --force of a broken machine: %v", err)
	}
	for _, n := range []string{"trunc", "zero"} {
		if out, err := cli(t, "rm", "--force", n); err != nil || !strings.Contains(out, "Removed") {
			t.Errorf("rm --force %s: %v\n%s", n, err, out)
		}
		if _, err := os.Stat(filepath.Join(home, n)); !os.IsNotExist(err) {
			t.Errorf("%s still there after rm --force: %v", n, err)
		}
	}
	if _, err := cli(t, "rm", "--force", "never-made"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("rm --force of a machine that never existed: %v", err)
	}

	// start with create flags on an existing machine refuses instead of ignoring them.
	_, err = cli(t, "start", "ok", "--cpus", "1", "--memory", "2G")
	if err == nil || !strings.Contains(err.Error(), `machine "ok" exists`) || !strings.Contains(err.Error(), "--cpus, --memory") || !strings.Contains(err.Error(), "machine set ok --cpus") {
		t.Errorf("start ok --cpus 1 --memory 2G: %v", err)
	}
}
