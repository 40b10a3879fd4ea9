package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/machine-run/machine/vmimage"
)

// testImage writes a loadable image folder whose files all mention tag.
func testImage(t *testing.T, tag string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), tag)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	man := vmimage.Manifest{SchemaVersion: vmimage.SchemaVersion, Arch: "amd64", CacheKey: tag}
	for _, f := range [][2]string{{vmimage.RoleKernel, "kernel"}, {vmimage.RoleInitramfs, "initramfs.img"}, {vmimage.RoleRoot, "root.img"}} {
		data := []byte(fmt.Sprintf("%s of image %s\n", f[0], tag))
		if err := os.WriteFile(filepath.Join(dir, f[1]), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		man.Files = append(man.Files, vmimage.File{Role: f[0], Name: f[1], Size: int64(len(data)), SHA256: fmt.Sprintf("%x", sum)})
	}
	b, _ := json.Marshal(man)
	if err := os.WriteFile(filepath.Join(dir, vmimage.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// upgradeFixture is a machine made from image A, with data on its data disk, and image B
// to upgrade to.
type upgradeFixture struct {
	m      *Machine
	a, b   string
	ids    map[string]string // manifest ID -> image folder
	disk   []byte
	diskMt time.Time
}

func newUpgradeFixture(t *testing.T) *upgradeFixture {
	t.Helper()
	s := &Store{Home: t.TempDir()}
	f := &upgradeFixture{a: testImage(t, "A"), b: testImage(t, "B"), ids: map[string]string{}}
	for _, d := range []string{f.a, f.b} {
		id, err := manifestID(d)
		if err != nil {
			t.Fatal(err)
		}
		f.ids[id] = d
	}
	m, err := s.Create(&Config{Name: "dev", Arch: "amd64", CPUs: 1, MemoryMiB: 1024, DiskGiB: 4, Driver: "qemu", ImageDigest: "sha256:aaaa"}, f.a)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	disk, err := os.OpenFile(m.DataDisk(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	disk.WriteAt([]byte("the user's containers and volumes"), 1<<20)
	disk.Close()
	f.disk = f.diskSum(t)
	st, _ := os.Stat(m.DataDisk())
	f.diskMt = st.ModTime()
	return f
}

func (f *upgradeFixture) diskSum(t *testing.T) []byte {
	// The disk is sparse (4 GiB): hash its size and the region the fixture wrote.
	disk, err := os.Open(f.m.DataDisk())
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	st, _ := disk.Stat()
	b := make([]byte, 2<<20)
	if _, err := disk.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(append(b, fmt.Sprint(st.Size())...))
	return s[:]
}

func (f *upgradeFixture) config(t *testing.T) *Config {
	t.Helper()
	c, err := f.m.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *upgradeFixture) install(t *testing.T, c *Config, src string) error {
	return f.m.InstallImage(c, src, ImageInfo{Source: src, Digest: "sha256:" + filepath.Base(src)})
}

// holds reports which test image (folder) dir holds, checking every file byte for byte.
func (f *upgradeFixture) holds(t *testing.T, dir string) string {
	t.Helper()
	if _, err := vmimage.Load(dir); err != nil {
		t.Fatalf("%s is not a loadable image: %v", dir, err)
	}
	id, _ := manifestID(dir)
	src, ok := f.ids[id]
	if !ok {
		t.Fatalf("%s holds an unknown image %s", dir, id)
	}
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		want, _ := os.ReadFile(filepath.Join(src, e.Name()))
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s/%s differs from %s: %v", dir, e.Name(), src, err)
		}
	}
	return filepath.Base(src)
}

// check asserts the invariants that hold after any recovery: image/ is a whole image and the
// one the config says; image.prev/ exists only while an upgrade is pending and then holds the
// image it came from; nothing staged or failed is left; the data disk is untouched.
func (f *upgradeFixture) check(t *testing.T) (c *Config, boots string) {
	t.Helper()
	c = f.config(t)
	boots = f.holds(t, f.m.ImageDir())
	if want := filepath.Base(c.ImageSource); boots != want {
		t.Errorf("image/ holds %s, config says %s", boots, c.ImageSource)
	}
	if c.Pending() {
		if got := f.holds(t, f.m.prevImageDir()); got != filepath.Base(c.Upgrade.From.Source) {
			t.Errorf("image.prev holds %s, upgrade is from %s", got, c.Upgrade.From.Source)
		}
		if id, _ := manifestID(f.m.ImageDir()); id != c.Upgrade.To.Manifest {
			t.Errorf("pending upgrade to %s but image/ is %s", c.Upgrade.To.Manifest, id)
		}
	} else if exists(f.m.prevImageDir()) {
		t.Error("image.prev left without a pending upgrade")
	}
	for _, d := range []string{f.m.nextImageDir(), f.m.nextImageDir() + ".tmp", f.m.failedImageDir()} {
		if exists(d) {
			t.Errorf("%s left behind", filepath.Base(d))
		}
	}
	if !bytes.Equal(f.diskSum(t), f.disk) {
		t.Error("the data disk changed")
	}
	if st, _ := os.Stat(f.m.DataDisk()); !st.ModTime().Equal(f.diskMt) {
		t.Error("the data disk was written")
	}
	return c, boots
}

func TestUpgradeInstallThenCommit(t *testing.T) {
	f := newUpgradeFixture(t)
	c := f.config(t)
	if err := f.install(t, c, f.b); err != nil {
		t.Fatal(err)
	}
	c, boots := f.check(t)
	if boots != "B" || !c.Pending() || c.ImageSource != f.b || c.ImageDigest != "sha256:B" {
		t.Fatalf("after install: boots %s, config %+v", boots, c)
	}
	if c.Upgrade.From.Source != f.a || c.Upgrade.From.Digest != "sha256:aaaa" {
		t.Errorf("upgrade from %+v, want image A with its digest", c.Upgrade.From)
	}
	if err := f.m.CommitUpgrade(c); err != nil {
		t.Fatal(err)
	}
	c, boots = f.check(t)
	if boots != "B" || c.Upgrade != nil {
		t.Fatalf("after commit: boots %s, upgrade %+v", boots, c.Upgrade)
	}
	if err := f.install(t, c, f.b); !errors.Is(err, ErrSameImage) {
		t.Errorf("install of the image it boots: %v, want ErrSameImage", err)
	}
}

func TestUpgradeRollbackRestoresPreviousImage(t *testing.T) {
	f := newUpgradeFixture(t)
	c := f.config(t)
	if err := f.install(t, c, f.b); err != nil {
		t.Fatal(err)
	}
	if err := f.m.RollbackUpgrade(c, "init", "the guest kernel panicked"); err != nil {
		t.Fatal(err)
	}
	c, boots := f.check(t)
	if boots != "A" || c.ImageSource != f.a || c.ImageDigest != "sha256:aaaa" {
		t.Fatalf("after rollback: boots %s, config %+v", boots, c)
	}
	u := c.Upgrade
	if u == nil || u.State != UpgradeRolledBack || u.FailedPhase != "init" || u.Error != "the guest kernel panicked" || u.To.Source != f.b || u.RolledBack == nil {
		t.Fatalf("rollback record %+v", u)
	}
	// A later upgrade starts from the restored image.
	if err := f.install(t, c, f.b); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.check(t); !c.Pending() || c.Upgrade.From.Source != f.a {
		t.Errorf("second upgrade %+v", c.Upgrade)
	}
}

// An upgrade installed over one that never booted keeps the image that did boot as the one
// to go back to.
func TestUpgradeOverPendingKeepsLastGoodImage(t *testing.T) {
	f := newUpgradeFixture(t)
	cImg := testImage(t, "C")
	id, _ := manifestID(cImg)
	f.ids[id] = cImg
	c := f.config(t)
	if err := f.install(t, c, f.b); err != nil {
		t.Fatal(err)
	}
	if err := f.install(t, c, cImg); err != nil {
		t.Fatal(err)
	}
	c, boots := f.check(t)
	if boots != "C" || c.Upgrade.From.Source != f.a {
		t.Fatalf("boots %s, upgrade %+v", boots, c.Upgrade)
	}
	if err := f.m.RollbackUpgrade(c, "docker", "timeout"); err != nil {
		t.Fatal(err)
	}
	if _, boots := f.check(t); boots != "A" {
		t.Errorf("rolled back to %s, want A", boots)
	}
}

var errCrash = errors.New("simulated crash")

// Every step of install, commit and rollback is interrupted in turn (the process "dies":
// nothing after the step runs, and the config is read back from disk). Recovery must leave
// image/ whole and consistent with the config, the data disk untouched, and a rollback from
// there must still restore the old image byte for byte.
func TestUpgradeCrashAtEveryStep(t *testing.T) {
	type op struct {
		name  string
		setup func(t *testing.T, f *upgradeFixture) // runs without crashes
		run   func(t *testing.T, f *upgradeFixture, c *Config) error
		steps []string
	}
	install := func(t *testing.T, f *upgradeFixture, c *Config) error { return f.install(t, c, f.b) }
	installed := func(t *testing.T, f *upgradeFixture) {
		if err := f.install(t, f.config(t), f.b); err != nil {
			t.Fatal(err)
		}
	}
	ops := []op{
		{"install", nil, install, []string{"stage", "record", "set-aside", "swap"}},
		{"install over pending", func(t *testing.T, f *upgradeFixture) {
			cImg := testImage(t, "C")
			id, _ := manifestID(cImg)
			f.ids[id] = cImg
			if err := f.install(t, f.config(t), cImg); err != nil {
				t.Fatal(err)
			}
		}, install, []string{"stage", "record", "set-aside", "swap"}},
		{"commit", installed, func(t *testing.T, f *upgradeFixture, c *Config) error { return f.m.CommitUpgrade(c) }, []string{"commit", "drop-prev"}},
		{"rollback", installed, func(t *testing.T, f *upgradeFixture, c *Config) error {
			return f.m.RollbackUpgrade(c, "init", "panic")
		}, []string{"record-rollback", "remove-failed", "restore", "drop-failed"}},
	}
	defer func() { upgradeStep = func(string) error { return nil } }()
	for _, o := range ops {
		for _, step := range append(slices.Clone(o.steps), "none") {
			t.Run(o.name+"/"+step, func(t *testing.T) {
				f := newUpgradeFixture(t)
				if o.setup != nil {
					o.setup(t, f)
				}
				upgradeStep = func(s string) error {
					if s == step {
						return errCrash
					}
					return nil
				}
				err := o.run(t, f, f.config(t))
				upgradeStep = func(string) error { return nil }
				if step != "none" && !errors.Is(err, errCrash) {
					t.Fatalf("%s did not reach step %s: %v", o.name, step, err)
				}
				if step == "none" && err != nil {
					t.Fatal(err)
				}
				// A crash mid-copy leaves a partial staging folder too.
				os.MkdirAll(f.m.nextImageDir()+".tmp", 0o700)
				os.WriteFile(filepath.Join(f.m.nextImageDir()+".tmp", "kernel"), []byte("half"), 0o600)

				c := f.config(t)
				for i := 0; i < 2; i++ { // recovery is idempotent
					if err := f.m.RecoverUpgrade(c); err != nil {
						t.Fatal(err)
					}
					c, _ = f.check(t)
				}
				if c.Pending() {
					if err := f.m.RollbackUpgrade(c, "init", "panic"); err != nil {
						t.Fatal(err)
					}
					if _, boots := f.check(t); boots != "A" {
						t.Errorf("rollback after recovery boots %s, want A", boots)
					}
				}
			})
		}
	}
}
