package vmimage

// containerdConfigPath is containerd's default configuration file, which the image builder
// replaces with containerdConfig.
const containerdConfigPath = "/etc/containerd/config.toml"

// containerdConfigDisabled are the containerd plugins the image turns off: dockerd uses
// containerd for its tasks and, with the containerd image store, the overlayfs snapshotter
// and the content store, and never any of these. Each costs containerd start-up time while
// dockerd starts beside it on the guest's two CPUs: under TCG the CRI plugin took 0.3-0.4 s
// (it loads CNI, starts a streaming server and recovers its state) and the aufs snapshotter
// 0.1 s (it runs `modprobe aufs` to find no module); the others are probes that find nothing
// (btrfs, zfs, devmapper, blockfile, tracing without an endpoint, NRI, which Debian's config
// disables too).
var containerdConfigDisabled = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.blockfile",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
	"io.containerd.nri.v1.nri",
}

// containerdConfig is the root's /etc/containerd/config.toml. It keeps Debian's "opt"
// path, where containerd's managed binaries go, on the data disk.
func containerdConfig() string {
	s := "# Written by machine's image builder (vmimage/containerd.go).\nversion = 2\n\ndisabled_plugins = [\n"
	for _, p := range containerdConfigDisabled {
		s += "  \"" + p + "\",\n"
	}
	return s + "]\n\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"/var/lib/containerd/opt\"\n"
}
