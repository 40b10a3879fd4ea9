//go:build linux

package vmimage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// hostTools are the programs a build runs, with the Debian package that ships each.
var hostTools = map[string]string{
	"mmdebstrap":          "mmdebstrap",
	"tar":                 "tar",
	"mksquashfs":          "squashfs-tools",
	"depmod":              "kmod",
	"xz":                  "xz-utils",
	"zstd":                "zstd",
	"update-alternatives": "dpkg",
	"go":                  "golang (only without --agent)",
}

func preflight(j *job) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("building a guest image needs root (mmdebstrap and the root filesystem keep real file ownership): run `sudo machine image build`")
	}
	for tool, pkg := range hostTools {
		if tool == "go" {
			continue // checked only when the agent is built
		}
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("building a guest image needs %s: apt-get install %s", tool, pkg)
		}
	}
	if hostArch := runtime.GOARCH; j.arch != hostArch {
		qemu := map[string]string{"arm64": "aarch64", "amd64": "x86_64"}[j.arch]
		b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-" + qemu)
		if err != nil || !strings.HasPrefix(string(b), "enabled") {
			return fmt.Errorf("building an %s image on %s needs binfmt emulation: apt-get install qemu-user-static binfmt-support && update-binfmts --enable qemu-%s", j.arch, hostArch, qemu)
		}
	}
	return nil
}

// buildImage writes kernel, initramfs.img, root.img and manifest.json into out.
func buildImage(ctx context.Context, j *job, out string) (*Manifest, error) {
	tarball, kernelTar, err := ensureRootfs(ctx, j)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	root, kdir := filepath.Join(work, "root"), filepath.Join(work, "kernel")
	for _, d := range []string{root, kdir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	j.log.Info("unpacking rootfs", "tarball", tarball)
	for _, x := range [][2]string{{tarball, root}, {kernelTar, kdir}} {
		if err := run(ctx, "tar", "-xpf", x[0], "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", x[1]); err != nil {
			return nil, err
		}
	}
	if err := moveKernelInto(kdir, root); err != nil {
		return nil, err
	}
	return assemble(ctx, j, root, out)
}

// moveKernelInto moves the extracted kernel package's /boot files and module tree into root,
// where assemble expects an installed kernel.
func moveKernelInto(kdir, root string) error {
	boots, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(boots) != 1 {
		return fmt.Errorf("kernel package: want one /boot/vmlinuz-*, found %d", len(boots))
	}
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		return err
	}
	if err := os.Rename(boots[0], filepath.Join(root, "boot", filepath.Base(boots[0]))); err != nil {
		return fmt.Errorf("kernel package: %w", err)
	}
	var mods []string
	for _, d := range []string{"usr/lib/modules", "lib/modules"} {
		found, _ := filepath.Glob(filepath.Join(kdir, d, "*"))
		mods = append(mods, found...)
	}
	if len(mods) != 1 {
		return fmt.Errorf("kernel package: want one module tree, found %d", len(mods))
	}
	dst := filepath.Join(root, "usr/lib/modules")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := os.Rename(mods[0], filepath.Join(dst, filepath.Base(mods[0]))); err != nil {
		return fmt.Errorf("kernel package: %w", err)
	}
	return nil
}

// ensureRootfs returns the cached mmdebstrap tarballs for j (the root, and the extracted
// kernel package), making them first when missing. The root tarball is renamed into place
// last, so its presence means both are whole.
func ensureRootfs(ctx context.Context, j *job) (rootTar, kernelTar string, err error) {
	rootTar = rootfsTarball(j.cache, j.arch, j.rootfsKey)
	kernelTar = kernelTarball(j.cache, j.arch, j.rootfsKey)
	_, rerr := os.Stat(rootTar)
	_, kerr := os.Stat(kernelTar)
	if rerr == nil && kerr == nil {
		j.rootfsCached = true
		return rootTar, kernelTar, nil
	}
	if err := os.MkdirAll(filepath.Dir(rootTar), 0o755); err != nil {
		return "", "", fmt.Errorf("rootfs cache: %w", err)
	}
	in := newRootfsInputs(j.arch)
	// The kernel package is extracted with dpkg-deb on the host: no maintainer scripts run,
	// so it costs seconds for any architecture.
	j.log.Info("extracting the kernel package", "package", in.Kernel, "arch", j.arch)
	if err := mmdebstrap(ctx, kernelTar, "--mode=root", "--variant=extract", "--arch="+j.arch,
		"--include="+in.Kernel, "--quiet", in.Suite); err != nil {
		return "", "", err
	}
	args := []string{
		"--mode=root", "--variant=essential", "--arch=" + j.arch,
		"--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
		"--include=" + strings.Join(in.Packages, ","),
		"--quiet",
	}
	for _, p := range in.DpkgExcludes {
		args = append(args, "--dpkgopt=path-exclude="+p)
	}
	j.log.Info("running mmdebstrap", "suite", in.Suite, "arch", j.arch, "rootfs_key", j.rootfsKey)
	if err := mmdebstrap(ctx, rootTar, append(args, in.Suite)...); err != nil {
		return "", "", err
	}
	return rootTar, kernelTar, nil
}

// mmdebstrap writes a tarball to a temporary file beside dst and renames it into place.
func mmdebstrap(ctx context.Context, dst string, args ...string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".rootfs-*.tar")
	if err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := run(ctx, "mmdebstrap", append(args, tmp.Name())...); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	return nil
}

// assemble turns the unpacked Debian root into the image files in out.
func assemble(ctx context.Context, j *job, root, out string) (*Manifest, error) {
	kver, err := kernelRelease(root)
	if err != nil {
		return nil, err
	}
	if err := writeKernel(j.arch, filepath.Join(root, "boot", "vmlinuz-"+kver), filepath.Join(out, "kernel")); err != nil {
		return nil, err
	}
	modDir := filepath.Join(root, "usr/lib/modules", kver)
	tree, err := openModuleTree(ctx, modDir)
	if err != nil {
		return nil, err
	}
	initMods, err := tree.resolve(api.InitramfsModules)
	if err != nil {
		return nil, fmt.Errorf("initramfs modules: %w", err)
	}
	rootMods, err := tree.resolve(api.RootModules)
	if err != nil {
		return nil, fmt.Errorf("root modules: %w", err)
	}
	agent, err := os.ReadFile(j.agentPath)
	if err != nil {
		return nil, fmt.Errorf("guest agent: %w", err)
	}
	j.log.Info("writing initramfs", "modules", len(initMods))
	initPaths, err := writeInitramfs(filepath.Join(out, "initramfs.img"), agent, kver, tree, initMods)
	if err != nil {
		return nil, err
	}
	status, err := os.Open(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	pkgs, err := parseDpkgStatus(status)
	status.Close()
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		SchemaVersion: SchemaVersion, Arch: j.arch, Suite: Suite, KernelRelease: kver,
		Cmdline: Cmdline, RootFormat: rootFSType, RootCompression: rootCompression,
		AgentVersion: j.agentSHA[:12],
		Engine: EngineVersions{
			Dockerd:    upstreamVersion(pkgs["docker.io"]),
			Containerd: upstreamVersion(pkgs["containerd"]),
			Runc:       upstreamVersion(pkgs["runc"]),
		},
		Packages: pkgs, CacheKey: j.imageKey, RootfsKey: j.rootfsKey,
		InitramfsModules: initPaths,
	}
	j.log.Info("pruning root", "modules", len(rootMods))
	if m.RootModules, err = installRootModules(ctx, modDir, kver, tree, rootMods); err != nil {
		return nil, err
	}
	if err := pruneRoot(root); err != nil {
		return nil, err
	}
	if err := addMachineFiles(root, agent, m); err != nil {
		return nil, err
	}
	if err := useLegacyIptables(ctx, root); err != nil {
		return nil, err
	}
	j.log.Info("packing root image", "format", rootFSType, "compression", rootCompression)
	if err := run(ctx, "mksquashfs", rootImageArgs(root, filepath.Join(out, "root.img"))...); err != nil {
		return nil, err
	}
	for _, f := range [][2]string{{RoleKernel, "kernel"}, {RoleInitramfs, "initramfs.img"}, {RoleRoot, "root.img"}} {
		if err := m.addFile(out, f[0], f[1]); err != nil {
			return nil, err
		}
	}
	return m, m.write(out)
}

// rootCompression and rootImageArgs choose the root image format. Sizes and build times on
// the pruned amd64 tree (307 MB) on a busy 2-core host: squashfs zstd (level 15, 128K blocks,
// the defaults) 94.8 MB in 87 s; zstd-19 86.2 MB in 208 s; lz4 150.6 MB in 4.5 s; lz4hc
// 120.6 MB; erofs lz4hc: see the report. The 2026-12 image (more packages) gave zstd 115 MB,
// lz4 184 MB in 1 s, lz4hc 151 MB in 21 s.
//
// Under TCG the guest decompresses at emulated speed: reading dockerd (94 MB) from the zstd
// root took 2.2 s cold against 0.36 s from the page cache, and the engine's binaries are
// read at every boot. Interleaved boots of one image in three root formats (wall time of
// `machine start`): zstd 14.0/14.2/14.2 s, lz4 11.5/13.0/12.6 s, uncompressed 12.1/12.8/13.8 s;
// then zstd against lz4hc, four rounds: 16.7/16.4/15.6/14.3 s against 12.5/15.6/12.2/20.4 s
// (the last an outlier of the host). lz4hc decompresses as fast as lz4 at a smaller size,
// so it wins: about 1.5 s of boot for a third more bytes to download.
// The manifest records rootCompression; rootImageArgs passes the same word to mksquashfs.
const rootCompression = "lz4"

func rootImageArgs(root, img string) []string {
	return []string{root, img, "-noappend", "-comp", rootCompression, "-Xhc", "-no-progress", "-quiet"}
}

func kernelRelease(root string) (string, error) {
	ents, err := os.ReadDir(filepath.Join(root, "usr/lib/modules"))
	if err != nil {
		return "", fmt.Errorf("rootfs: kernel modules: %w", err)
	}
	if len(ents) != 1 {
		return "", fmt.Errorf("rootfs: want one kernel in /usr/lib/modules, found %d", len(ents))
	}
	return ents[0].Name(), nil
}

func writeKernel(arch, src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	data, err = bootableKernel(arch, data)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// installRootModules replaces the kernel's module tree with the uncompressed modules in
// names and runs depmod so `modprobe -a` works in the guest. It returns their paths.
func installRootModules(ctx context.Context, modDir, kver string, tree *moduleTree, names []string) ([]string, error) {
	// Decompress everything needed before deleting the tree it comes from.
	files := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := tree.Module(n)
		if err != nil {
			return nil, err
		}
		files[n] = b
	}
	keep := map[string]bool{"modules.builtin": true, "modules.builtin.modinfo": true, "modules.order": true}
	ents, err := os.ReadDir(modDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(modDir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	var paths []string
	for _, n := range names {
		rel := tree.UncompressedPath(n)
		dst := filepath.Join(modDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, files[n], 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, filepath.Join("/usr/lib/modules", kver, rel))
	}
	root := strings.TrimSuffix(modDir, filepath.Join("/usr/lib/modules", kver))
	if err := run(ctx, "depmod", "-b", root, kver); err != nil {
		return nil, err
	}
	return paths, nil
}

// prunePaths are removed from the root: the kernel (shipped beside the image), engine parts
// the guest never runs (the in-guest docker CLI, old containerd shims, ctr, the dynamic tini:
// docker-init is tini-static), caches, logs and the build host's resolv.conf and hostname.
var prunePaths = []string{
	"boot", "usr/lib/linux-image-*", "usr/lib/firmware",
	"usr/bin/docker", "usr/bin/tini", "usr/bin/containerd-shim", "usr/bin/containerd-shim-runc-v1", "usr/bin/ctr",
	"usr/libexec/docker/cli-plugins",
	"var/cache/*", "var/lib/apt/lists/*", "var/log/*",
	"etc/resolv.conf", "etc/hostname",
}

func pruneRoot(root string) error {
	for _, pat := range prunePaths {
		matches, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			return err
		}
		for _, p := range matches {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("prune root: %w", err)
			}
		}
	}
	return nil
}

// mountPoints are the empty directories the guest agent mounts on.
var mountPoints = []string{api.DataMount, "/var/lib/docker", "/var/lib/containerd", "/run", "/tmp", "/dev", "/proc", "/sys"}

// addMachineFiles adds the guest agent, versions.json, containerd's configuration and mount
// points.
func addMachineFiles(root string, agent []byte, m *Manifest) error {
	for _, d := range append(mountPoints, filepath.Dir(api.VersionsPath)) {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, api.AgentPath), agent, 0o755); err != nil {
		return fmt.Errorf("root: guest agent: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, containerdConfigPath), []byte(containerdConfig()), 0o644); err != nil {
		return fmt.Errorf("root: containerd config: %w", err)
	}
	v, err := json.MarshalIndent(api.Versions{
		Agent: m.AgentVersion, Kernel: m.KernelRelease,
		Docker: m.Engine.Dockerd, Containerd: m.Engine.Containerd, Runc: m.Engine.Runc,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, api.VersionsPath), append(v, '\n'), 0o644)
}

// legacyIptables are the alternatives the root's iptables and ip6tables point at: the
// kernel's xtables rather than nftables. The engine programs about a hundred rules while it
// starts, one process each, and each legacy process does less: measured in the guest under
// TCG, `iptables -t nat -L` took 19 ms legacy and 35 ms nft, and the engine's start-up
// 0.4 s less. The rules, and so Docker's semantics, are the same on either backend; the
// legacy tables' modules are in api.RootModules.
var legacyIptables = [][2]string{
	{"iptables", "/usr/sbin/iptables-legacy"},
	{"ip6tables", "/usr/sbin/ip6tables-legacy"},
}

func useLegacyIptables(ctx context.Context, root string) error {
	for _, a := range legacyIptables {
		if err := run(ctx, "update-alternatives", "--root", root, "--quiet", "--set", a[0], a[1]); err != nil {
			return fmt.Errorf("root: %s: %w", a[0], err)
		}
	}
	return nil
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
	// SIGTERM, not SIGKILL: mmdebstrap then stops its workers and unmounts /proc, /sys and
	// /dev from its chroot. A killed mmdebstrap leaves orphans and mounts behind.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	return runTool(cmd)
}
