// Package api is the wire contract between the host and the guest agent: guest service
// numbers, boot phase names, and the JSON types the control service speaks; its subpackage
// bootparams holds what a guest is told at boot. They are the only guest packages the host
// imports, so they hold data and tiny codecs, never behaviour that needs a VM.
package api

import "time"

// Service numbers. On vsock a service number is the vsock port the guest listens on; over the
// virtio-serial channel it is the header that opens each multiplexed stream.
const (
	// ServiceControl speaks HTTP/1.1: info, events, shutdown, time.
	ServiceControl uint32 = 2400
	// ServiceExec runs a command (optionally on a PTY); see exec.go for its framing.
	ServiceExec uint32 = 2401
	// ServiceDocker is a raw stream to the engine's /var/run/docker.sock.
	ServiceDocker uint32 = 2402
	// ServiceForward opens a connection to a port inside the guest; see ForwardRequest.
	ServiceForward uint32 = 2403
)

// HostCID is the vsock context ID of the host; the guest agent accepts no other peer.
const HostCID = 2

// SerialPortName is the virtio-serial port that carries the multiplexed channel when the
// hypervisor has no vsock. The guest finds it at /dev/virtio-ports/<SerialPortName>.
const SerialPortName = "machine.agent"

// What a guest is told at boot (channel, network, hostname, shares, Rosetta, token, clock)
// is the boot contract in guestagent/api/bootparams.

// Boot phase names, in the order the guest reaches them. Each is reported with the seconds
// since the kernel started (CLOCK_BOOTTIME), so the host can print a breakdown.
const (
	PhaseInit       = "init"       // initramfs /init running
	PhaseRoot       = "root"       // read-only root + overlay mounted, switch_root done
	PhaseModules    = "modules"    // kernel modules loaded
	PhaseDataDisk   = "data-disk"  // data disk checked/formatted and mounted
	PhaseNetwork    = "network"    // loopback and NIC configured
	PhaseShares     = "shares"     // host folders mounted (9p or virtiofs)
	PhaseRosetta    = "rosetta"    // x86_64 translator mounted and registered with binfmt_misc
	PhaseAgent      = "agent"      // guest agent serving the host channel
	PhaseContainerd = "containerd" // containerd socket answers
	PhaseDocker     = "docker"     // dockerd answers /_ping: the machine is ready
)

// Phase is one boot milestone.
type Phase struct {
	Name string `json:"name"`
	// Seconds since the guest kernel started.
	Seconds float64 `json:"seconds"`
	// Detail is optional human-readable context ("formatted /dev/vdb", an error).
	Detail string `json:"detail,omitempty"`
}

// Versions of the guest's software, filled from the image manifest and the engine.
type Versions struct {
	Agent      string `json:"agent"`
	Kernel     string `json:"kernel"`
	Docker     string `json:"docker,omitempty"`
	Containerd string `json:"containerd,omitempty"`
	Runc       string `json:"runc,omitempty"`
}

// DataDisk describes the persistent disk as the guest saw it this boot.
type DataDisk struct {
	Device string `json:"device"`
	// Formatted is true when this boot found the disk blank and created the filesystem.
	Formatted  bool   `json:"formatted"`
	MountPoint string `json:"mount_point"`
	// Check says why this boot checked the filesystem (e2fsck -p) and what the check did;
	// empty when it was left clean.
	Check string `json:"check,omitempty"`
	// Grown says how this boot grew the filesystem to a disk made larger on the host.
	Grown string `json:"grown,omitempty"`
}

// Info is the answer of GET /v1/info on the control service.
type Info struct {
	Arch     string   `json:"arch"`
	Versions Versions `json:"versions"`
	Phases   []Phase  `json:"phases"`
	DataDisk DataDisk `json:"data_disk"`
	// Ready is true once dockerd answers /_ping.
	Ready bool `json:"ready"`
	// Error is set when a boot phase failed for good.
	Error string `json:"error,omitempty"`
	// MemoryUsedKiB is what free(1) reports as used: MemTotal - MemFree - Buffers - Cached -
	// SReclaimable. MemoryUnavailableKiB is MemTotal - MemAvailable, which also counts part
	// of the page cache.
	MemoryUsedKiB        uint64 `json:"memory_used_kib"`
	MemoryUnavailableKiB uint64 `json:"memory_unavailable_kib"`
}

// Control service HTTP paths.
const (
	PathInfo     = "/v1/info"     // GET: Info
	PathEvents   = "/v1/events"   // GET: JSON lines of Event; past phases are replayed first
	PathShutdown = "/v1/shutdown" // POST: stop the engine, sync, unmount, power off
	PathTime     = "/v1/time"     // POST: TimeSync
)

// Event types on PathEvents.
const (
	EventPhase = "phase" // Phase is set
	EventReady = "ready" // the engine answers
	EventError = "error" // Message is set; boot cannot continue
	EventPorts = "ports" // Ports is the full current set of published ports
)

// Event is one line of the guest's event stream.
type Event struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Phase   *Phase    `json:"phase,omitempty"`
	Message string    `json:"message,omitempty"`
	Ports   []Port    `json:"ports,omitempty"`
}

// Port is a port the engine publishes inside the guest.
type Port struct {
	Proto string `json:"proto"` // "tcp" or "udp"
	// HostIP is the address the container asked for ("0.0.0.0", "::", "127.0.0.1", "::1").
	HostIP   string `json:"host_ip"`
	HostPort uint16 `json:"host_port"`
	// Container is the ID of the container that owns the port.
	Container string `json:"container"`
}

// TimeSync is the body of POST PathTime: the host's clock.
type TimeSync struct {
	UnixNano int64 `json:"unix_nano"`
}

// ForwardRequest is the JSON line that opens a ServiceForward stream. After it, TCP streams
// carry raw bytes; UDP streams carry datagrams framed as a 2-byte big-endian length + payload.
type ForwardRequest struct {
	Proto string `json:"proto"` // "tcp" or "udp"
	Port  uint16 `json:"port"`
	// IP is the guest address to dial; empty means the guest's primary address (where the
	// engine's NAT reaches containers published on a wildcard address), else loopback.
	IP string `json:"ip,omitempty"`
}
