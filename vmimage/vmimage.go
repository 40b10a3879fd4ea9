// Package vmimage builds, caches and describes the guest image every machine boots: a kernel,
// an initramfs whose /init is the guest agent, a read-only compressed root filesystem made
// from Debian packages with mmdebstrap, and a manifest.json that names and hashes them.
//
// Building needs a Linux host (mmdebstrap, mksquashfs, depmod); reading a manifest, finding
// the latest cached image and verifying it work everywhere.
package vmimage

import (
	"errors"
	"fmt"
)

// Suite is the Debian release the guest root is made from.
const Suite = "trixie"

// Recipe versions. Bump rootfsRecipe when the mmdebstrap invocation changes (it invalidates
// the cached rootfs tarball) and imageRecipe when anything done after it changes (pruning,
// initramfs layout, root format, manifest): the cache keys include them.
const (
	rootfsRecipe = "rootfs-2" // rootfs-2: the kernel is extracted, not installed
	imageRecipe  = "image-6"  // image-6: containerd config (image-5: lz4 initramfs; image-4: lz4hc root; image-3: unsigned modules, legacy iptables)
)

// SchemaVersion is the manifest format version written by this package.
const SchemaVersion = 1

// Cmdline is the image's part of the kernel command line: kernel words and the root's
// filesystem type (the initramfs reads it when the disk's magic does not tell). Everything
// else a guest is told comes from the boot contract (guestagent/api/bootparams), which the
// drivers encode over it.
//
// page_reporting_order=5: free page reporting (the balloon's, see the QEMU driver) hands
// free blocks of 128 KiB and up back to the host instead of only whole 2 MiB pageblocks;
// with the default, ~180 MB that a container freed stayed with QEMU as fragments.
//
// cgroup.memory=nokmem: no kernel-memory accounting for cgroups. Enabling it (the engine's
// first container cgroup does) flips a static key that the kernel then patches into every
// slab free and page allocation while the other vCPUs run that code; under multi-threaded
// TCG a vCPU can still run the old translation with the patch's int3 in it, and the guest
// panicked ("Oops: int3" in kmem_cache_free, and in __alloc_pages, then "Fatal exception
// in interrupt"). Memory limits still apply; kernel memory is just not charged to them.
//
// No softlockup_panic: a VM whose vCPUs did not run for a while (its hypervisor stopped,
// starved or frozen, as TestFaults' 120 s SIGSTOP does) looks to the guest's watchdog like a
// CPU stuck for that long; with the panic the guest died on resume ("soft lockup - CPU#1
// stuck for 112s! [swapper/1:0]", idle). The watchdog still reports a real lockup on the
// console.
const Cmdline = "panic=-1 page_reporting.page_reporting_order=5 cgroup.memory=nokmem rootfstype=" + rootFSType

// rootFSType is the filesystem of root.img; see rootImageArgs.
const rootFSType = "squashfs"

// Packages are installed on top of Debian's Essential set. The kernel (linux-image-<arch>)
// is not installed but extracted apart (mmdebstrap's extract variant): only its kernel file
// and modules are used, and skipping its maintainer scripts (initramfs, depmod over every
// module) saves many minutes when the root of another architecture runs under qemu-user.
//
// Besides booting, the engine's whole API needs what Docker documents as its runtime
// dependencies: procps (`ps`, which answers `docker top`), xz-utils (xz-compressed layers and
// build contexts), git (`docker build` of a git URL) and pigz (parallel layer decompression).
var Packages = []string{
	"docker.io", "containerd", "runc", "iptables", "kmod", "e2fsprogs",
	"ca-certificates", "iproute2", "mount",
	"procps", "xz-utils", "git", "pigz",
}

// dpkgExcludes keep documentation, man pages and translations out of the root.
var dpkgExcludes = []string{
	"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
	"/usr/share/lintian/*", "/usr/share/bash-completion/*", "/usr/share/zsh/*",
	"/usr/share/fish/*",
}

// ErrNoImage is returned by Latest when no image has been built for an architecture.
var ErrNoImage = errors.New("no guest image")

// ErrUnsupportedHost is returned by Build on hosts that cannot build images (not Linux).
var ErrUnsupportedHost = errors.New("guest images can only be built on Linux")

// kernelPackage is Debian's generic kernel for arch (the cloud flavour lacks 9p).
func kernelPackage(arch string) string { return "linux-image-" + arch }

// checkArch accepts the architectures images are built for.
func checkArch(arch string) error {
	switch arch {
	case "amd64", "arm64":
		return nil
	}
	return fmt.Errorf("architecture %q: want amd64 or arm64", arch)
}
