// Package qemu is the QEMU driver: it builds QEMU's command line for the host OS and
// accelerator (KVM or TCG on Linux, HVF on macOS, WHPX on Windows), runs QEMU as a child of
// the host agent, and reaches guest services over vhost-vsock or, where there is none, the
// multiplexed virtio-serial channel.
package qemu

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/hostagent/driver"
)

// Accelerators QEMU may use.
const (
	AccelKVM  = "kvm"
	AccelHVF  = "hvf"
	AccelWHPX = "whpx"
	AccelTCG  = "tcg"
)

// Host is what the command line depends on besides the VM itself; tests pass it in so every
// OS's command line is checked on any OS.
type Host struct {
	OS    string // GOOS of the host
	Accel string // one of the Accel constants
	// VsockCID, when non-zero, attaches vhost-vsock with this guest CID and makes the guest
	// serve on vsock instead of the serial channel.
	VsockCID uint32
	// VsockFD, when non-zero, is QEMU's descriptor of an open /dev/vhost-vsock on which the
	// host agent already claimed VsockCID (see chooseVsock).
	VsockFD int
	// AgentSocket is the unix socket where QEMU listens for the host end of the serial
	// channel. When empty, QEMU listens on loopback TCP port AgentPort instead (Windows).
	AgentSocket string
	AgentPort   int
	// Token, when set, is the serial channel's secret: the host writes it first on every
	// session, and QEMU hands it to the guest from TokenFile through its firmware
	// configuration device (never on the kernel command line, which containers can read).
	// Required with AgentPort; prepareChannel sets one for every serial channel.
	Token     string
	TokenFile string
	// QMPSocket is QEMU's machine protocol socket (power-off requests), a unix socket in the
	// machine's private folder on every OS: QMP controls the whole VM (blockdev-add,
	// dump-guest-memory), so it must never be a port other local users, or containers
	// through the NAT's host alias, can reach. QEMU for Windows serves unix sockets since
	// 7.2 (Windows 10 1803 and later).
	QMPSocket string
	// FSSockets, one per share of the machine, are the vhost-user sockets of the virtiofsd
	// serving each share; "" (or a nil slice) serves that share with QEMU's own 9p instead.
	// Any virtiofs share puts guest RAM in a shared memory file, which vhost-user needs.
	FSSockets []string
	// Kernel, when set, is booted instead of the image's kernel: the PVH ELF unpacked from
	// an amd64 bzImage (see pvhKernel).
	Kernel string
	// ForwardNICFD, when non-zero, is QEMU's descriptor of the VM's end of the forwarding
	// NIC's socket pair (netstack.Pair): QEMU attaches it as a second virtio-net device and
	// the guest is told to configure it.
	ForwardNICFD int
}

// usesVirtiofs reports whether any share is on virtiofs.
func (h Host) usesVirtiofs() bool {
	return slices.ContainsFunc(h.FSSockets, func(s string) bool { return s != "" })
}

// Binary returns QEMU's system emulator name for a guest architecture on a host OS.
func Binary(goos, guestArch string) (string, error) {
	var name string
	switch guestArch {
	case "amd64":
		name = "qemu-system-x86_64"
	case "arm64":
		name = "qemu-system-aarch64"
	default:
		return "", fmt.Errorf("qemu: unsupported guest architecture %q (want amd64 or arm64)", guestArch)
	}
	if goos == "windows" {
		name += ".exe"
	}
	return name, nil
}

// Args returns QEMU's arguments (without the binary) for cfg on host.
func Args(cfg driver.Config, host Host) ([]string, error) {
	if cfg.CPUs < 1 || cfg.MemoryMiB < 128 {
		return nil, fmt.Errorf("qemu: machine %q: need at least 1 CPU and 128 MiB (have %d, %d MiB)", cfg.Name, cfg.CPUs, cfg.MemoryMiB)
	}
	for what, p := range map[string]string{"kernel": cfg.Kernel, "initramfs": cfg.Initrd, "root image": cfg.RootImage, "data disk": cfg.DataDisk} {
		if p == "" {
			return nil, fmt.Errorf("qemu: machine %q: no %s path", cfg.Name, what)
		}
	}
	if host.QMPSocket == "" {
		return nil, fmt.Errorf("qemu: machine %q: no QMP socket path", cfg.Name)
	}
	machine, cpu, console, err := board(cfg.Arch, host.Accel)
	if err != nil {
		return nil, err
	}
	cmdline, err := bootCmdline(cfg, host, console)
	if err != nil {
		return nil, err
	}
	if len(host.FSSockets) > len(cfg.Shares) {
		return nil, fmt.Errorf("qemu: machine %q: %d virtiofs sockets for %d shares", cfg.Name, len(host.FSSockets), len(cfg.Shares))
	}
	if host.usesVirtiofs() {
		if host.OS != "linux" {
			return nil, fmt.Errorf("qemu: machine %q: virtiofs shares need a Linux host (shared guest memory in a memfd)", cfg.Name)
		}
		machine += ",memory-backend=ram"
	}

	a := []string{
		"-name", "machine-" + cfg.Name,
		"-machine", machine,
		"-accel", accelArg(host.Accel),
	}
	if host.Accel == AccelWHPX {
		// QEMU tries accelerators in order and warns when WHPX is not enabled.
		a = append(a, "-accel", accelArg(AccelTCG))
	}
	a = append(a,
		"-cpu", cpu,
		"-smp", fmt.Sprint(cfg.CPUs),
		"-m", fmt.Sprintf("%dM", cfg.MemoryMiB),
	)
	if host.usesVirtiofs() {
		// virtiofsd reads and writes guest buffers itself, so guest RAM is a shared memfd.
		a = append(a, "-object", fmt.Sprintf("memory-backend-memfd,id=ram,size=%dM,share=on", cfg.MemoryMiB))
	}
	a = append(a,
		"-nodefaults", "-no-user-config", "-display", "none",
		// A guest kernel panic (including the soft-lockup panic the image enables) ends QEMU
		// instead of rebooting or hanging, so the host agent sees it and can report it.
		"-no-reboot",
		"-rtc", "base=utc,clock=host",
		"-kernel", qemuPath(host.OS, cmp.Or(host.Kernel, cfg.Kernel)),
		"-initrd", qemuPath(host.OS, cfg.Initrd),
		"-append", cmdline,
		"-drive", "if=none,id=root,format=raw,readonly=on,file="+qemuPath(host.OS, cfg.RootImage),
		"-device", "virtio-blk-pci,drive=root",
		// writeback caching with flushes passed through: a guest fsync reaches the host disk.
		"-drive", "if=none,id=data,format=raw,cache=writeback,discard=unmap,detect-zeroes=unmap,file="+qemuPath(host.OS, cfg.DataDisk),
		"-device", "virtio-blk-pci,drive=data",
		"-netdev", userNetdev(cfg.HostForwards),
		"-device", "virtio-net-pci,netdev=net0",
	)
	if host.ForwardNICFD != 0 {
		// One Ethernet frame per datagram on the socket pair; host_mtu tells the guest
		// driver the link's MTU, so the frames carry 64 KiB each.
		a = append(a,
			"-netdev", fmt.Sprintf("dgram,id=fwd,local.type=fd,local.str=%d", host.ForwardNICFD),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=fwd,mac=%s,host_mtu=%d", bootparams.ForwardNICMAC, bootparams.ForwardNICMTU),
		)
	}
	a = append(a,
		"-device", "virtio-rng-pci",
		// Free page reporting: the guest's virtio_balloon driver reports pages it has freed
		// (in 2 MiB blocks, a few seconds after they are freed) and QEMU hands them back to
		// the host, so memory a container used does not stay with QEMU for ever.
		"-device", "virtio-balloon-pci,free-page-reporting=on",
		"-chardev", "file,id=console,path="+qemuPath(host.OS, cfg.SerialLog),
		"-serial", "chardev:console",
		"-qmp", "unix:"+qemuPath(host.OS, host.QMPSocket)+",server=on,wait=off",
	)
	if host.VsockCID != 0 {
		dev := fmt.Sprintf("vhost-vsock-pci,guest-cid=%d", host.VsockCID)
		if host.VsockFD != 0 {
			dev += fmt.Sprintf(",vhostfd=%d", host.VsockFD)
		}
		a = append(a, "-device", dev)
	} else {
		chardev, err := agentChardev(host)
		if err != nil {
			return nil, err
		}
		a = append(a,
			"-device", "virtio-serial-pci,id=vser0,max_ports="+fmt.Sprint(serialPorts),
			"-chardev", chardev,
			"-device", "virtserialport,bus=vser0.0,chardev=agent,name="+api.SerialPortName,
		)
	}
	if host.Token != "" {
		if host.TokenFile == "" {
			return nil, fmt.Errorf("qemu: machine %q: a channel token but no file to pass it to the guest in", cfg.Name)
		}
		a = append(a, "-fw_cfg", "name="+bootparams.TokenFwCfgName+",file="+qemuPath(host.OS, host.TokenFile))
	}
	for i, s := range cfg.Shares {
		if i < len(host.FSSockets) && host.FSSockets[i] != "" {
			// The guest mounts the tag with virtiofs when no 9p device carries it; read-only
			// is enforced by virtiofsd itself (virtiofsdArgs) and by the guest's mount.
			id := fmt.Sprintf("fs%d", i)
			a = append(a,
				"-chardev", "socket,id="+id+",path="+qemuPath(host.OS, host.FSSockets[i]),
				"-device", "vhost-user-fs-pci,queue-size=1024,chardev="+id+",tag="+s.Tag)
			continue
		}
		a = append(a, "-virtfs", virtfs(host.OS, fmt.Sprintf("share%d", i), s.HostPath, s.Tag, s.ReadOnly))
	}
	if cfg.Rosetta != nil {
		a = append(a, "-virtfs", virtfs(host.OS, "rosetta", cfg.Rosetta.HostPath, bootparams.RosettaTag, true))
	}
	return a, nil
}

// EmulationKernelWords are added to the kernel command line under TCG, where they change
// nothing a program can rely on and save most of the time a process start costs:
//   - norandmaps: QEMU's TCG (7.2 here) keys translated code by its virtual address, so a
//     library mapped at a new random address in every process is translated again in every
//     process. Without randomised mappings `/bin/true` took 13 ms instead of 37 ms and
//     `iptables -L` 35 ms instead of 86 ms, and Docker was ready 6 s sooner (the engine
//     runs about a hundred iptables processes while it starts).
//   - mitigations=off: an emulator executes nothing speculatively, so the kernel's Spectre
//     mitigations (retpolines, RSB filling) only cost time.
//   - cryptomgr.notests and initcall_blacklist=jent_mod_init,crypto_kdf108_init: the kernel
//     tests every crypto algorithm it registers against known answers, the SP800-108 KDF
//     library runs its own test, and the jitter entropy source times its CPU, all at
//     emulated speed: together about 0.8 s before /init. The algorithms and the KDF stay;
//     what goes is the jitterentropy_rng algorithm, which only FIPS mode requires (the
//     kernel's DRBG seeds itself without it; /dev/random never used it).
//   - rcupdate.rcu_expedited=1: every synchronize_rcu (netfilter table swaps, network
//     namespaces, bridge ports, module loading) waits for an expedited grace period, which
//     interrupts the other CPUs at once, instead of a normal one, which waits for scheduler
//     ticks that emulated CPUs reach slowly. The engine calls it hundreds of times while it
//     starts: Docker was ready about 1.5 s sooner (median of 7 interleaved boots).
//
// Hardware-accelerated guests keep every default.
var EmulationKernelWords = []string{"norandmaps", "mitigations=off", "cryptomgr.notests", "initcall_blacklist=jent_mod_init,crypto_kdf108_init", "rcupdate.rcu_expedited=1"}

// EmulationSMPWords are added as well when a multi-CPU guest runs under TCG. Emulated
// vCPUs can run a stale copy of code the kernel patches live (an int3 left behind panics the
// guest): the kernel boots on one CPU, and the guest agent brings up the rest once the boot's
// own patching is done (guestagent/boot/cpus_linux.go). An image whose command line sets
// maxcpus itself keeps its own (`make panics` measures the guest without this mitigation
// that way).
var EmulationSMPWords = []string{"maxcpus=1"}

func setsMaxCPUs(word string) bool { return strings.HasPrefix(word, "maxcpus=") }

// bootCmdline is the -append value: the machine's boot contract with this driver's
// transport (console, serial or vsock channel, user networking, the channel token).
func bootCmdline(cfg driver.Config, host Host, console string) (string, error) {
	if cfg.Rosetta != nil && cfg.Rosetta.HostPath == "" {
		return "", fmt.Errorf("qemu: machine %q: Rosetta under QEMU needs a folder holding a translator (Apple's Rosetta is shared only by the vz driver)", cfg.Name)
	}
	p, err := cfg.BootParams()
	if err != nil {
		return "", fmt.Errorf("qemu: %w", err)
	}
	p.Console, p.Channel, p.Net, p.Token = console, bootparams.ChannelSerial, bootparams.NetUser, host.Token
	if host.Accel == AccelTCG {
		p.Kernel = append(p.Kernel, EmulationKernelWords...)
		if cfg.CPUs > 1 && !slices.ContainsFunc(p.Kernel, setsMaxCPUs) {
			p.Kernel = append(p.Kernel, EmulationSMPWords...)
		}
	}
	if host.VsockCID != 0 {
		p.Channel = bootparams.ChannelVsock
	}
	p.ForwardNIC = host.ForwardNICFD != 0
	line, err := p.Encode()
	if err != nil {
		return "", fmt.Errorf("qemu: machine %q: %w", cfg.Name, err)
	}
	return line, nil
}

// serialPorts sizes the virtio-serial device for the one port the channel uses (port 0 is
// reserved for a console). QEMU's default of 31 ports gives the device 64 queues, each with
// an eventfd notifier that QEMU's main loop polls on every turn: a machine had 95 file
// descriptors open with them and has 37 without. The main loop also runs the user network
// and the 9p server, so polling fewer saves time on every packet and every file request.
const serialPorts = 2

// virtfs is a -virtfs value: QEMU's own 9p server for one host folder.
func virtfs(goos, id, hostPath, tag string, readOnly bool) string {
	opt := fmt.Sprintf("local,id=%s,path=%s,mount_tag=%s,security_model=none", id, qemuPath(goos, hostPath), tag)
	if readOnly {
		opt += ",readonly=on"
	}
	return opt
}

// board picks the machine type, CPU model and console device for a guest architecture.
func board(arch, accel string) (machine, cpu, console string, err error) {
	switch arch {
	case "amd64":
		cpu = "max"
		if accel == AccelKVM || accel == AccelHVF {
			cpu = "host"
		}
		return "q35", cpu, "ttyS0", nil
	case "arm64":
		// Under TCG, "max" spends most of its time emulating pointer authentication;
		// pauth-impdef keeps the features at a fraction of the cost.
		cpu = "max,pauth-impdef=on"
		if accel != AccelTCG {
			cpu = "host"
		}
		m := "virt"
		if accel == AccelHVF {
			m = "virt,highmem=on"
		}
		return m, cpu, "ttyAMA0", nil
	}
	return "", "", "", fmt.Errorf("qemu: unsupported guest architecture %q (want amd64 or arm64)", arch)
}

func accelArg(accel string) string {
	if accel == AccelTCG {
		// A 256 MiB translation cache keeps QEMU's RSS well below the default's, with no slowdown.
		return "tcg,tb-size=256,thread=multi"
	}
	return accel
}

// qemuPath renders a host path for QEMU options that are split on commas: QEMU escapes a
// comma by doubling it.
func qemuPath(goos, p string) string {
	if goos == "windows" {
		p = strings.ReplaceAll(p, "/", `\`)
	}
	return strings.ReplaceAll(p, ",", ",,")
}

// userNetdev is QEMU's user-mode network, with optional hostfwd rules (benchmarks compare
// QEMU's own port forwarding with ours through them).
func userNetdev(hostfwd []string) string {
	s := "user,id=net0"
	for _, f := range hostfwd {
		s += ",hostfwd=" + f
	}
	return s
}
