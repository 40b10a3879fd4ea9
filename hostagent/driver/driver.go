// Package driver defines what the host agent needs from a hypervisor: boot a VM from a guest
// image, stop it, wait for it, and open streams to guest services. Drivers live in
// subpackages (qemu, vz); this package holds only the interface and the portable VM
// description, so it builds on every OS without cgo.
package driver

import (
	"context"
	"errors"
	"net"
	"time"
)

// ErrUnsupported is returned for an optional capability a driver or host lacks.
var ErrUnsupported = errors.New("not supported by this driver")

// Driver owns one VM for the lifetime of a host agent.
type Driver interface {
	// Start boots the VM and returns once the hypervisor runs it (not when the guest is ready).
	Start(ctx context.Context) error
	// DialGuest opens a stream to a guest service (see guestagent/api). It may block until
	// the guest agent accepts, or until ctx ends.
	DialGuest(ctx context.Context, service uint32) (net.Conn, error)
	// RequestStop asks the hypervisor for an ACPI power-off; the guest decides how to react.
	RequestStop(ctx context.Context) error
	// Kill stops the VM at once; acknowledged guest writes not yet on disk may be lost.
	Kill() error
	// Wait blocks until the VM has exited and returns why: nil for a guest power-off.
	Wait() error
}

// StateReporter is an optional capability of drivers whose hypervisor reports the VM's state
// changes (Apple's framework: starting, running, stopping, error). The host agent calls
// ReportStates before Start and turns each state into an event.
type StateReporter interface {
	ReportStates(fn func(state string))
}

// Pauser is an optional capability of drivers that can stop a running VM's vCPUs and let
// them go on later (QEMU's QMP stop/cont, Apple's Pause/Resume): a paused VM keeps its memory
// but costs no CPU. While paused, the guest channel must not be judged dead for not
// answering. The host agent pauses an idle machine and resumes it on the next connection.
type Pauser interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}

// NetForwarder is an optional capability of drivers whose hypervisor network can carry a
// host TCP connection straight to a port on the guest's primary address (QEMU's user-network
// hostfwd). A connection forwarded that way skips the guest agent's relay and the channel:
// under emulation that relay costs a guest TCP round and a process wake-up per round trip,
// two thirds of the latency. Only ports the engine publishes on the guest's wildcard address
// are reached this way (its NAT delivers them); the rest go through the channel.
type NetForwarder interface {
	// ForwardTCP makes guestPort on the guest's primary address reachable at the returned
	// host loopback address, until UnforwardTCP. It returns ErrUnsupported when the channel
	// is the better path on this VM (vsock), for every port.
	ForwardTCP(ctx context.Context, guestPort uint16) (hostAddr string, err error)
	UnforwardTCP(ctx context.Context, hostAddr string) error
}

// ForwardNIC is an optional capability of drivers that attach the forwarding NIC
// (bootparams.ForwardNICMAC), a private Ethernet link whose host end the host agent runs a
// TCP/IP stack on (hostagent/netstack) and dials wildcard-published ports through. It is
// the preferred path: unlike a NetForwarder it needs no per-port setup, and its 64 KiB
// frames carry bulk data several times faster than the hypervisor's NAT.
type ForwardNIC interface {
	// ForwardNIC returns the host end of the link of the VM Start started, one Ethernet
	// frame per datagram, or nil when this VM has none. The caller owns it once Start has
	// returned.
	ForwardNIC() net.Conn
}

// Config describes the VM a driver boots. Paths are absolute host paths.
type Config struct {
	Name      string // the machine's name
	Dir       string // the machine's state folder, for sockets and logs
	Arch      string // guest architecture: "amd64" or "arm64"
	CPUs      int
	MemoryMiB int

	Kernel    string // kernel image (uncompressed Image on arm64)
	Initrd    string // initramfs
	RootImage string // read-only root filesystem image, attached as the first disk
	DataDisk  string // persistent raw disk, attached as the second disk
	// Cmdline is the image's kernel command line (its manifest's): kernel words and the root
	// filesystem type. BootParams decodes it and sets everything machine-level over it; the
	// driver adds its transport (console, channel, network mode, token).
	Cmdline string
	// BootTime is the host clock the guest is given at boot; zero means the time when the
	// driver makes its boot parameters.
	BootTime time.Time

	SerialLog string // file that receives the guest's serial console

	// Shares are host folders exposed to the guest (9p on QEMU, virtiofs on vz).
	Shares []Share
	// Rosetta, when set, shares an x86_64 translator with an arm64 guest under
	// bootparams.RosettaTag; the guest registers it with binfmt_misc.
	Rosetta *Rosetta

	// NoHostAccess keeps containers off the host's loopback (no host.docker.internal).
	NoHostAccess bool

	// HostForwards are QEMU user-network hostfwd rules ("tcp:127.0.0.1:19000-:9000"); only
	// benchmarks use them, to compare with the port forwarder. Other drivers ignore them.
	HostForwards []string
}

// Rosetta says where the translator comes from.
type Rosetta struct {
	// HostPath is a host folder holding the translator as "rosetta", shared like a folder.
	// Empty on vz, which shares Apple's Rosetta itself; QEMU needs it (tests share a
	// stand-in interpreter there).
	HostPath string
}

// Share is a host folder exposed to the guest under Tag.
type Share struct {
	Tag       string
	HostPath  string
	GuestPath string // where the guest mounts it
	ReadOnly  bool
}

// ChannelWatcher is an optional capability of drivers whose guest channel is one session over
// a carrier that can break while the VM runs (QEMU's serial port). The driver notices a break
// (keepalive), redials by itself, and reports each change; DialGuest waits for the channel
// while it is down. The host agent calls WatchChannel before Start.
type ChannelWatcher interface {
	WatchChannel(fn func(ChannelState))
	// CutChannel breaks the carrier as a failing connection would, for fault tests.
	CutChannel() error
}

// ChannelState is a change of the guest channel's health.
type ChannelState struct {
	Up  bool
	Err error // why it went down
}

// HostServer is an optional capability of drivers whose channel carries streams the guest
// opens to the host (host services: DNS, host.docker.internal). The host agent calls
// ServeHost before Start; handler returns nil for a service the host does not serve.
type HostServer interface {
	ServeHost(handler func(service uint32) func(net.Conn))
}
