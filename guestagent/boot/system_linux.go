package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/reaper"
)

// Uptime returns seconds since the kernel started, suspend included (CLOCK_BOOTTIME).
func Uptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// SetClock sets the wall clock.
func SetClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("clock_settime: %w", err)
	}
	return nil
}

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	// skipIf names a path that exists when the mount is already there (stage 1 moved it).
	skipIf string
}

const nodevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

var baseMounts = []mount{
	{"proc", "/proc", "proc", nodevExec, "", "/proc/self"},
	{"sysfs", "/sys", "sysfs", nodevExec, "", "/sys/kernel"},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", "/dev/null"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", ""},
	{"shm", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", ""},
	{"mqueue", "/dev/mqueue", "mqueue", nodevExec, "", ""},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", ""},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", ""},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", nodevExec, "nsdelegate", ""},
}

// MountBase mounts proc, sys, devpts, shm, mqueue, /run, /tmp and cgroup2, then makes the
// whole tree shared (ShareTree) so that the data disk and shares mounted later are too.
func MountBase() error {
	var errs []error
	for _, m := range baseMounts {
		if m.skipIf != "" {
			if _, err := os.Stat(m.skipIf); err == nil {
				continue
			}
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("mkdir %s: %w", m.target, err))
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && err != unix.EBUSY {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	// /dev/ptmx must be the new devpts instance's, for PTYs to work inside and outside.
	os.Remove("/dev/ptmx")
	os.Symlink("pts/ptmx", "/dev/ptmx")
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}} {
		os.Symlink(l[0], l[1])
	}
	if err := ShareTree("/"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ShareTree makes target and every mount below it shared (`mount --make-rshared`), as
// systemd does for / on a Linux host. The kernel leaves a new root private; then bind mounts
// with rslave or rshared propagation (`docker run -v SRC:DST:rslave`) fail with "not a shared
// or slave mount". Mounts made later under a shared mount are shared as well.
func ShareTree(target string) error {
	if err := unix.Mount("", target, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a shared mount tree: %w", target, err)
	}
	return nil
}

// LoadModules runs one `modprobe -a` for modules; a missing module is logged, not fatal.
func LoadModules(ctx context.Context, r *reaper.Reaper, log *slog.Logger, modules []string) error {
	out, err := r.Output(ctx, exec.Command("modprobe", append([]string{"-a"}, modules...)...))
	if err != nil {
		log.Warn("modules: some did not load", "err", err)
		return err
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		log.Info("modules", "output", s)
	}
	return nil
}

// modprobeSysctl is the program the kernel runs to load a module it was asked for by name
// (a socket family, a binary format, a filesystem, a netfilter match).
const modprobeSysctl = "/proc/sys/kernel/modprobe"

// EndModuleAutoload stops the kernel from running modprobe for modules it does not have.
// Call it once LoadModules has loaded every module the image ships: the image holds only
// the closure of api.RootModules (and the initramfs's), so from then on a request can only
// be for a module the image lacks, and each would start modprobe (kmod, linked with
// libcrypto: about 90 ms under TCG) to find nothing. The engine makes ten on its way to the
// Docker API: BuildKit's check of which foreign binaries run, one exec per architecture, and
// the IPsec probe for xfrm_user. With an empty kernel.modprobe the kernel fails such a request
// at once (ENOENT); modprobe run by hand works as before.
func EndModuleAutoload() error {
	if err := os.WriteFile(modprobeSysctl, []byte("\n"), 0); err != nil {
		return fmt.Errorf("stop module autoloading: %w", err)
	}
	return nil
}

// DataLabel is the filesystem label of a data disk the agent formatted.
const DataLabel = "machine-data"

// DataDirs are the folders of the data disk bind-mounted onto the root.
var DataDirs = map[string]string{
	"docker":     "/var/lib/docker",
	"containerd": "/var/lib/containerd",
	"machine":    "/var/lib/machine",
}

// PrepareData checks dev, formats it when blank, mounts it on mountPoint and bind-mounts its
// folders (DataDirs). A disk with unknown content is never touched: it returns ErrUnknownDisk.
func PrepareData(ctx context.Context, r *reaper.Reaper, log *slog.Logger, dev, mountPoint string) (api.DataDisk, error) {
	d := api.DataDisk{Device: dev, MountPoint: mountPoint}
	if err := waitPath(ctx, dev, 10*time.Second); err != nil {
		return d, fmt.Errorf("data disk: %w", err)
	}
	kind, err := DetectDisk(dev)
	if err != nil {
		return d, err
	}
	switch kind {
	case DiskOther:
		return d, fmt.Errorf("data disk %s: %w", dev, ErrUnknownDisk)
	case DiskBlank:
		start := time.Now()
		if _, err := r.Output(ctx, exec.Command("mkfs.ext4", "-q", "-F", "-L", DataLabel, "-m", "0",
			"-E", "lazy_itable_init=1,lazy_journal_init=1", dev)); err != nil {
			return d, fmt.Errorf("data disk %s: format: %w", dev, err)
		}
		d.Formatted = true
		log.Info("data disk: formatted blank disk", "device", dev, "took", time.Since(start).Round(time.Millisecond))
	case DiskExt4:
		check, err := CheckData(ctx, reaperRunner(r), log, dev)
		if err != nil {
			return d, err
		}
		d.Check = check
	}
	if err := os.MkdirAll(mountPoint, 0o755); err != nil {
		return d, fmt.Errorf("data disk: %w", err)
	}
	if err := unix.Mount(dev, mountPoint, "ext4", unix.MS_NOATIME, ""); err != nil {
		return d, fmt.Errorf("data disk %s: mount on %s: %w", dev, mountPoint, err)
	}
	if kind == DiskExt4 { // the host may have grown the disk (machine set --disk)
		grown, err := GrowData(ctx, reaperRunner(r), log, dev)
		if err != nil {
			log.Warn("data disk: grow", "err", err) // the disk works at its old size
		}
		d.Grown = grown
	}
	for _, name := range sortedKeys(DataDirs) {
		src, dst := filepath.Join(mountPoint, name), DataDirs[name]
		if err := os.MkdirAll(src, 0o710); err != nil {
			return d, fmt.Errorf("data disk: %w", err)
		}
		if err := os.MkdirAll(dst, 0o710); err != nil {
			return d, fmt.Errorf("data disk: %w", err)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return d, fmt.Errorf("data disk: bind %s on %s: %w", src, dst, err)
		}
	}
	return d, nil
}

// UnmountData undoes PrepareData: the bind mounts first, then the disk.
func UnmountData(mountPoint string) error {
	var errs []error
	for _, name := range sortedKeys(DataDirs) {
		if err := unmount(DataDirs[name]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unmount(mountPoint); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unmount retries briefly while the filesystem is busy (processes just killed may still be
// closing files), then falls back to remounting read-only so the journal is clean.
func unmount(target string) error {
	var err error
	for i := 0; i < 20; i++ {
		err = unix.Unmount(target, 0)
		if err == nil || err == unix.EINVAL || err == unix.ENOENT {
			return nil // EINVAL: not mounted
		}
		if err != unix.EBUSY {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rerr := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); rerr == nil {
		return fmt.Errorf("unmount %s: %w (remounted read-only instead)", target, err)
	}
	return fmt.Errorf("unmount %s: %w", target, err)
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// SetHostname sets the kernel hostname and writes /etc/hostname and /etc/hosts under root.
func SetHostname(root, name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname %q: %w", name, err)
	}
	return WriteHostFiles(root, name)
}

// KillAll asks every process but PID 1 to stop, and kills what is left after grace.
// kill(-1, 0) cannot tell when they are gone (kernel threads always count), so /proc is read.
func KillAll(grace time.Duration) {
	unix.Kill(-1, unix.SIGTERM)
	unix.Kill(-1, unix.SIGCONT)
	if waitNoUserProcesses("/proc", grace) {
		return
	}
	unix.Kill(-1, unix.SIGKILL)
	waitNoUserProcesses("/proc", time.Second)
}

func waitNoUserProcesses(proc string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if len(UserProcesses(proc)) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pfKthread is PF_KTHREAD in the flags field of /proc/<pid>/stat.
const pfKthread = 0x00200000

// UserProcesses lists the pids under proc that are neither this process nor kernel threads.
// Zombies count until reaped.
func UserProcesses(proc string) []int {
	ents, _ := os.ReadDir(proc)
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 7 {
			continue
		}
		flags, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil || flags&pfKthread != 0 {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// PowerOff syncs and powers the VM off. It returns only on failure.
func PowerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func waitPath(ctx context.Context, p string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", p, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// reaperRunner runs commands through the reaper (the agent is PID 1 and reaps every child).
func reaperRunner(r *reaper.Reaper) Runner {
	return func(ctx context.Context, cmd *exec.Cmd) ([]byte, int, error) {
		out, st, err := r.OutputStatus(ctx, cmd)
		return out, st.Code, err
	}
}
