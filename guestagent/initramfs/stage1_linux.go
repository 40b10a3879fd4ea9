package initramfs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/cmdline"
)

// RootWait bounds the wait for the root device.
const RootWait = 30 * time.Second

// Mount points inside the new root that keep the layers of the overlay visible.
const (
	lowerDir = "/mnt/.machine/image"   // the read-only root image
	upperDir = "/mnt/.machine/overlay" // the tmpfs with upper/ and work/
)

// Run performs stage 1 and execs stage 2; it returns only on failure. uptime reads
// CLOCK_BOOTTIME.
func Run(log *slog.Logger, uptime func() float64) error {
	phases := []api.Phase{{Name: api.PhaseInit, Seconds: uptime()}}
	if err := mountKernelFS(); err != nil {
		return err
	}
	p, err := cmdline.ReadProc()
	if err != nil {
		return err
	}
	if err := loadModules(log, api.InitramfsModuleList); err != nil {
		return err
	}
	if p.Root == "" {
		return errors.New("kernel command line names no root device: cannot find the root image")
	}
	if err := waitDevice(log, p.Root, RootWait); err != nil {
		return err
	}
	fstype := p.RootFSType
	if detected, err := RootFSType(p.Root); err == nil {
		fstype = detected // the disk's magic wins over the command line
	} else if fstype == "" {
		return err
	}
	if err := mountRoot(p.Root, fstype, "/newroot"); err != nil {
		return err
	}
	phases = append(phases, api.Phase{Name: api.PhaseRoot, Seconds: uptime(), Detail: fstype + " " + p.Root})
	return switchRoot("/newroot", phases)
}

func mountKernelFS() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, unix.MS_NOSUID, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s on %s: %w", m.typ, m.dst, err)
		}
	}
	return nil
}

// loadModules loads each module file listed (relative to /) in list, in order. A module the
// kernel already has is fine; a module that fails is logged, and boot goes on (the root may
// still mount if the function is built in).
func loadModules(log *slog.Logger, list string) error {
	f, err := os.Open(list)
	if errors.Is(err, os.ErrNotExist) {
		log.Warn("stage 1: no module list", "path", list)
		return nil
	}
	if err != nil {
		return fmt.Errorf("module list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || strings.HasPrefix(rel, "#") {
			continue
		}
		if err := loadModule(filepath.Join("/", rel)); err != nil {
			log.Warn("stage 1: module", "file", rel, "err", err)
		}
	}
	return sc.Err()
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if err == nil || err == unix.EEXIST {
		return nil
	}
	return fmt.Errorf("finit_module %s: %w", path, err)
}

func waitDevice(log *slog.Logger, dev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 2 * time.Millisecond
	warned := false
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		if !warned && time.Until(deadline) < timeout/2 {
			log.Warn("stage 1: still waiting for the root device", "device", dev)
			warned = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("root device %s did not appear within %v: is the root image attached as the first virtio disk, and virtio_blk in the initramfs?", dev, timeout)
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// mountRoot mounts dev read-only, a tmpfs for the writable layer, and the overlay on target.
func mountRoot(dev, fstype, target string) error {
	for _, d := range []string{"/image", "/overlay", target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	if err := unix.Mount(dev, "/image", fstype, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount root image %s (%s): %w", dev, fstype, err)
	}
	if err := unix.Mount("tmpfs", "/overlay", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount overlay tmpfs: %w", err)
	}
	for _, d := range []string{"/overlay/upper", "/overlay/work"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	opts := "lowerdir=/image,upperdir=/overlay/upper,workdir=/overlay/work"
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	// Keep the layers reachable from the new root (for debugging and df).
	for _, m := range [][2]string{{"/image", lowerDir}, {"/overlay", upperDir}} {
		dst := filepath.Join(target, m[1])
		if err := os.MkdirAll(dst, 0o755); err == nil {
			unix.Mount(m[0], dst, "", unix.MS_MOVE, "")
		}
	}
	return nil
}

// switchRoot moves the kernel filesystems into newRoot, frees the initramfs, makes newRoot
// the root and execs the agent from it.
func switchRoot(newRoot string, phases []api.Phase) error {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		dst := filepath.Join(newRoot, d)
		os.MkdirAll(dst, 0o755)
		if err := unix.Mount(d, dst, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s into the new root: %w", d, err)
		}
	}
	agent := filepath.Join(newRoot, api.AgentPath)
	if _, err := os.Stat(agent); err != nil {
		return fmt.Errorf("stage 2 agent: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err == nil {
		freeInitramfs("/", st.Dev, newRoot)
	}
	if err := os.Chdir(newRoot); err != nil {
		return fmt.Errorf("chdir %s: %w", newRoot, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s onto /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	b, _ := json.Marshal(phases)
	env := append(os.Environ(), PhasesEnv+"="+string(b))
	if err := unix.Exec(api.AgentPath, []string{api.AgentPath}, env); err != nil {
		return fmt.Errorf("exec %s: %w", api.AgentPath, err)
	}
	return nil
}

// freeInitramfs deletes the initramfs's files (its memory is not freed otherwise), staying on
// the initramfs's own device and skipping the new root.
func freeInitramfs(dir string, dev uint64, skip string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if p == skip {
			continue
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Dev != dev {
			continue
		}
		if e.IsDir() {
			freeInitramfs(p, dev, skip)
		}
		os.Remove(p)
	}
}
