package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/hostagent/store"
)

func loadCfg(t *testing.T, name string) (*store.Machine, *store.Config) {
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
	return m, cfg
}

func TestSet(t *testing.T) {
	img := setup(t)
	a, b := t.TempDir(), t.TempDir()
	if _, err := cli(t, "create", "dev", "--arch", "amd64", "--cpus", "1", "--memory", "1GiB", "--disk", "8G", "--image", img, "--share", a); err != nil {
		t.Fatal(err)
	}
	m, _ := loadCfg(t, "dev")
	os.WriteFile(m.DataDisk(), []byte("data that must survive"), 0o600) // a stand-in disk
	os.Truncate(m.DataDisk(), 8<<30)

	out, err := cli(t, "set", "dev", "--cpus", "2", "--memory", "2GiB", "--disk", "12GiB", "--share", b+":ro", "--unshare", a)
	if err != nil {
		t.Fatalf("set: %v\n%s", err, out)
	}
	for _, want := range []string{"CPUs 1 -> 2", "memory 1024 MiB -> 2048 MiB", "disk 8 GiB -> 12 GiB", "shares " + b + " (read-only)", "no longer shares " + a} {
		if !strings.Contains(out, want) {
			t.Errorf("set output lacks %q:\n%s", want, out)
		}
	}
	_, cfg := loadCfg(t, "dev")
	if cfg.CPUs != 2 || cfg.MemoryMiB != 2048 || cfg.DiskGiB != 12 || !slices.Equal(cfg.Shares, []string{b}) || !slices.Equal(cfg.ReadOnlyShares, []string{b}) {
		t.Errorf("config after set: %+v", cfg)
	}
	st, _ := os.Stat(m.DataDisk())
	f, _ := os.Open(m.DataDisk())
	data := make([]byte, 22)
	f.Read(data)
	f.Close()
	if st.Size() != 12<<30 || string(data) != "data that must survive" {
		t.Errorf("disk is %d bytes (want %d) and starts %q", st.Size(), int64(12)<<30, data)
	}

	before, _ := os.ReadFile(m.ConfigPath())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--disk", "10GiB"}, "disks only grow"},
		{[]string{"--cpus", "9999"}, "--cpus 9999"},
		{[]string{"--memory", "lots"}, "--memory"},
		{[]string{"--unshare", a}, "does not share it"},
		{[]string{"--share", filepath.Join(a, "missing")}, "not a folder"},
		{[]string{"--cpus", "2", "--disk", "4GiB"}, "disks only grow"}, // nothing applied when one setting is wrong
		{nil, "nothing to change"},
	} {
		out, err := cli(t, append([]string{"set", "dev"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("set %v: %v (%s); want an error about %q", tt.args, err, out, tt.want)
		}
	}
	if after, _ := os.ReadFile(m.ConfigPath()); string(after) != string(before) {
		t.Error("a refused set changed the config")
	}
	if _, err := cli(t, "set", "nosuch", "--cpus", "1"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("set on a missing machine: %v", err)
	}
	if _, err := cli(t, "start", "dev", "--cpus", "2"); err == nil || !strings.Contains(err.Error(), "machine set dev --cpus") {
		t.Errorf("start --cpus on an existing machine: %v; want it to point at machine set", err)
	}
}

// Auto-pause on a stopped machine: saved in its config, said in its status; an idle time alone
// turns it on; off together with an idle time is a contradiction.
func TestSetAutoPause(t *testing.T) {
	img := setup(t)
	if _, err := cli(t, "create", "dev", "--arch", "amd64", "--image", img); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args     []string
		out      string
		idle     time.Duration
		statusIs string
	}{
		{[]string{"--auto-pause=false"}, "auto-pause after 5m0s -> off", 0, "off"},
		{[]string{"--auto-pause=false"}, "already has these settings", 0, "off"},
		{[]string{"--auto-pause"}, "auto-pause off -> after 5m0s", 5 * time.Minute, "after 5m0s"},
		{[]string{"--auto-pause-after", "30s"}, "auto-pause after 5m0s -> after 30s", 30 * time.Second, "after 30s"},
		{[]string{"--auto-pause=true"}, "already has these settings", 30 * time.Second, "after 30s"}, // keeps its idle time
		{[]string{"--auto-pause=false"}, "-> off", 0, "off"},
		{[]string{"--auto-pause-after", "1m"}, "auto-pause off -> after 1m0s", time.Minute, "after 1m0s"},
	} {
		out, err := cli(t, append([]string{"set", "dev"}, tt.args...)...)
		if err != nil || !strings.Contains(out, tt.out) {
			t.Errorf("set %v: %v\n%s\nwant %q", tt.args, err, out, tt.out)
		}
		if _, cfg := loadCfg(t, "dev"); cfg.AutoPauseIdle() != tt.idle {
			t.Errorf("after set %v: idle time %v in the config, want %v", tt.args, cfg.AutoPauseIdle(), tt.idle)
		}
		if out, _ := cli(t, "status", "dev"); !strings.Contains(strings.Join(strings.Fields(out), " "), "Auto-pause: "+tt.statusIs) {
			t.Errorf("after set %v, status:\n%s\nwant Auto-pause: %s", tt.args, out, tt.statusIs)
		}
	}
	m, _ := loadCfg(t, "dev")
	before, _ := os.ReadFile(m.ConfigPath())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--auto-pause=false", "--auto-pause-after", "1m"}, "give one of them"},
		{[]string{"--auto-pause-after", "1s"}, "at least 2s"},
		{[]string{"--auto-pause-after", "soon"}, "auto-pause-after"},
	} {
		out, err := cli(t, append([]string{"set", "dev"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("set %v: %v (%s); want an error about %q", tt.args, err, out, tt.want)
		}
	}
	if after, _ := os.ReadFile(m.ConfigPath()); string(after) != string(before) {
		t.Error("a refused set changed the config")
	}
}
