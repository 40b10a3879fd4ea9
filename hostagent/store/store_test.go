package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"default", "a", "dev-1", "x9", strings.Repeat("a", 32)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Dev", "-a", "a-", "../etc", "a/b", "a b", ".", "..", "a_b", strings.Repeat("a", 33)} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2048M": 2048 << 20, "2G": 2 << 30, "2GiB": 2 << 30, "512MB": 512 << 20, "64gib": 64 << 30, "1024": 1024, "1T": 1 << 40} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "2X", "1.5G", "99999999999999999999T"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestValidateResources(t *testing.T) {
	h := Host{CPUs: 2, MemoryMiB: 8192}
	good := &Config{Arch: "amd64", CPUs: 2, MemoryMiB: 2048, DiskGiB: 64}
	if err := ValidateResources(good, h); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Config{
		"too many cpus": {Arch: "amd64", CPUs: 3, MemoryMiB: 2048, DiskGiB: 64},
		"no cpus":       {Arch: "amd64", CPUs: 0, MemoryMiB: 2048, DiskGiB: 64},
		"tiny memory":   {Arch: "amd64", CPUs: 1, MemoryMiB: 100, DiskGiB: 64},
		"all memory":    {Arch: "amd64", CPUs: 1, MemoryMiB: 8192, DiskGiB: 64},
		"tiny disk":     {Arch: "amd64", CPUs: 1, MemoryMiB: 2048, DiskGiB: 1},
		"bad arch":      {Arch: "s390x", CPUs: 1, MemoryMiB: 2048, DiskGiB: 64},
	} {
		if err := ValidateResources(c, h); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func fakeImage(t *testing.T) string {
	dir := t.TempDir()
	for _, f := range []string{"kernel", "initramfs.img", "root.img", "manifest.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCreateAndList(t *testing.T) {
	s := &Store{Home: t.TempDir()}
	c := &Config{Name: "dev", Arch: "amd64", CPUs: 1, MemoryMiB: 1024, DiskGiB: 8, Driver: "qemu"}
	m, err := s.Create(c, fakeImage(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(m.DataDisk())
	if err != nil || st.Size() != 8<<30 {
		t.Fatalf("data disk: %v size %d", err, st.Size())
	}
	if b, _ := os.ReadFile(filepath.Join(m.ImageDir(), "kernel")); string(b) != "kernel" {
		t.Errorf("image not copied: %q", b)
	}
	if fi, _ := os.Stat(m.Dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("machine folder mode %v, want 0700", fi.Mode().Perm())
	}
	got, err := m.LoadConfig()
	if err != nil || got.Name != "dev" || got.MemoryMiB != 1024 || got.Created.IsZero() {
		t.Fatalf("LoadConfig = %+v, %v", got, err)
	}
	names, _ := s.List()
	if len(names) != 1 || names[0] != "dev" {
		t.Errorf("List = %v", names)
	}
	// A second create must not touch the existing machine.
	os.WriteFile(m.DataDisk(), []byte("user data"), 0o600)
	if _, err := s.Create(c, fakeImage(t)); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(m.DataDisk()); string(b) != "user data" {
		t.Error("second create touched the data disk")
	}
}

func TestCreateRollsBack(t *testing.T) {
	s := &Store{Home: t.TempDir()}
	_, err := s.Create(&Config{Name: "dev", Arch: "amd64", CPUs: 1, MemoryMiB: 1024, DiskGiB: 8}, filepath.Join(t.TempDir(), "missing"))
	if err == nil {
		t.Fatal("create with a missing image succeeded")
	}
	if _, err := os.Stat(filepath.Join(s.Home, "dev")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-made machine left behind: %v", err)
	}
}

func TestLoadConfigMissingAndCorrupt(t *testing.T) {
	s := &Store{Home: t.TempDir()}
	m, _ := s.Machine("ghost")
	if _, err := m.LoadConfig(); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	os.MkdirAll(m.Dir, 0o700)
	os.WriteFile(m.ConfigPath(), []byte("{not json"), 0o600)
	if _, err := m.LoadConfig(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt: %v", err)
	}
}

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	l, err := TryLockLive(p)
	if err != nil {
		t.Fatal(err)
	}
	if !Held(p) {
		t.Error("Held = false while locked")
	}
	if _, err := TryLockLive(p); !errors.Is(err, ErrLocked) {
		t.Errorf("second TryLock: %v, want ErrLocked", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := LockContext(ctx, p); err == nil {
		t.Error("LockContext got a held lock")
	}
	go func() { time.Sleep(30 * time.Millisecond); l.Unlock() }()
	l2, err := LockContext(context.Background(), p)
	if err != nil {
		t.Fatalf("LockContext after unlock: %v", err)
	}
	l2.Unlock()
	if Held(p) {
		t.Error("Held = true after unlock")
	}
}

func TestReadPidAndAlive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pid")
	if ReadPid(p) != 0 {
		t.Error("missing pid file read as a pid")
	}
	os.WriteFile(p, []byte("12345\n"), 0o600)
	if ReadPid(p) != 12345 {
		t.Error("pid not read")
	}
	if !ProcessAlive(os.Getpid()) {
		t.Error("own process not alive")
	}
}

func TestParseWholeSize(t *testing.T) {
	for _, tt := range []struct {
		in      string
		shift   uint
		want    int
		wantErr string
	}{
		{"2G", 20, 2048, ""},
		{"1536M", 20, 1536, ""},
		{"64GiB", 30, 64, ""},
		{"600K", 20, 0, `size "600K" is not a whole number of MiB`},
		{"4100M", 30, 0, `size "4100M" is not a whole number of GiB`},
		{"99999999999999999999G", 20, 0, `size "99999999999999999999G" is too large`},
		{"9999999999G", 20, 0, `size "9999999999G" is too large`},
	} {
		unit := map[uint]string{20: "MiB", 30: "GiB"}[tt.shift]
		got, err := ParseWholeSize(tt.in, tt.shift, unit, "2G")
		if tt.wantErr == "" && (err != nil || got != tt.want) || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ParseWholeSize(%q) = %d, %v; want %d, %q", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "strconv") {
			t.Errorf("ParseWholeSize(%q) leaks strconv's error: %v", tt.in, err)
		}
	}
}

func TestLoadConfigValidates(t *testing.T) {
	s := &Store{Home: t.TempDir()}
	m, _ := s.Machine("dev")
	os.MkdirAll(m.Dir, 0o700)
	good := Config{Name: "dev", Arch: "amd64", CPUs: 1, MemoryMiB: 1024, DiskGiB: 8}
	for _, tt := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.CPUs = 0 }, "cpus 0: must be at least 1"},
		{func(c *Config) { c.MemoryMiB = 0 }, "memory_mib 0"},
		{func(c *Config) { c.DiskGiB = -1 }, "disk_gib -1"},
		{func(c *Config) { c.Arch = "riscv64" }, `arch "riscv64"`},
	} {
		c := good
		tt.edit(&c)
		if err := m.SaveConfig(&c); err != nil {
			t.Fatal(err)
		}
		_, err := m.LoadConfig()
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "machine rm --force dev") {
			t.Errorf("LoadConfig of a config with %s: %v", tt.want, err)
		}
	}
	if err := m.SaveConfig(&good); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadConfig(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
