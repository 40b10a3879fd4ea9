package api

// The boot contract between the image builder (vmimage) and the guest agent.

// InitramfsModules are loaded by the initramfs, in this order, before the root is mounted.
// The image builder ships each (uncompressed) with its dependencies, and lists the files
// in load order in InitramfsModuleList; modules the kernel has built in are skipped.
//
// qemu_fw_cfg shows QEMU's firmware configuration in sysfs, where the guest agent reads the
// serial channel's token (bootparams.TokenFwCfgPath) before it serves the channel, which is
// before the root modules load.
var InitramfsModules = []string{
	"virtio_pci", "virtio_blk", "virtio_console", "squashfs", "overlay", "qemu_fw_cfg",
}

// RootModules are loaded by the guest agent after switch_root with one `modprobe -a`.
// The image ships them and their dependencies in the root, with modules.dep from depmod.
//
// crc32c_generic comes first: libcrc32c (nf_conntrack) and ext4 need the "crc32c"
// crypto algorithm, which is only a softdep alias, so an image pruned to the dependency
// closure otherwise lacks it (ext4: "Cannot load crc32c driver"; netfilter: "Unknown symbol").
// binfmt_misc (a module in Debian's kernels) hands x86_64 programs to Rosetta in arm64 guests.
// virtio_balloon (a module in Debian's kernels) reports freed pages to the host (QEMU's
// free-page-reporting), which gives them back.
// The netfilter modules are the legacy xtables ones, which the image's iptables uses
// (vmimage's legacyIptables): the engine's filter and nat tables, and the mangle table that
// closes the host alias (boot.HostAliasRules). nf_conntrack_netlink lets the engine delete
// the stale connection-tracking entries of a UDP port it maps again; without it dockerd
// logs "Could not load necessary modules for Conntrack" and leaves them.
var RootModules = []string{
	"crc32c_generic", "virtio_net", "virtio_rng", "virtio_balloon", "vmw_vsock_virtio_transport", "9p", "9pnet_virtio",
	"ext4", "bridge", "br_netfilter", "veth",
	"nf_nat", "nf_conntrack", "nf_conntrack_netlink", "xt_conntrack", "xt_MASQUERADE", "xt_addrtype", "xt_nat",
	"xt_tcpudp", "xt_mark", "iptable_nat", "iptable_filter", "iptable_mangle",
	"ip6table_nat", "ip6table_filter", "ip6table_mangle",
	"overlay", "tun", "binfmt_misc",
}

// Paths inside the guest that the image builder and the agent agree on.
const (
	// InitramfsModuleList holds one module path (relative to the initramfs root) per line,
	// dependencies first.
	InitramfsModuleList = "/etc/machine/initramfs-modules"
	// AgentPath is the guest agent inside the root image (it is /init in the initramfs).
	AgentPath = "/sbin/machine-guestagent"
	// VersionsPath holds a JSON Versions written by the image builder.
	VersionsPath = "/etc/machine/versions.json"
	// DataMount is where the data disk is mounted; /var/lib/docker, /var/lib/containerd and
	// machine state are bind mounts of folders in it.
	DataMount = "/mnt/data"
)
