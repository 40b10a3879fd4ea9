package api

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Host services: streams the guest opens to the host (over the serial channel they use the
// same 4-byte service header in the other direction; on vsock the guest dials the host's
// CID at the service's port). They carry what must come from the host itself.
const (
	// ServiceHostConnect connects to the host's loopback for host.docker.internal: the
	// stream opens with a HostConnectRequest, the host answers one HostConnect* status byte,
	// then TCP streams carry raw bytes and UDP streams datagram frames (see datagram.go).
	ServiceHostConnect uint32 = 2410
	// ServiceHostDNS answers DNS queries with the host's resolver: each query is one DNS
	// message in a datagram frame, answered by one frame, in turn on the same stream.
	ServiceHostDNS uint32 = 2411
	// ServiceHostWatch carries file events for bind-mounted shares: the guest writes a
	// WatchRequest JSON line whenever the set of folders it wants watched changes (the
	// whole set each time), and the host writes a FileEvents JSON line per coalesced burst.
	ServiceHostWatch uint32 = 2412
)

// HostServices are the services the host serves to the guest. On vsock the host listens on
// each as a port of the VM's socket device; on the serial channel they are stream services
// in the guest-to-host direction.
var HostServices = []uint32{ServiceHostConnect, ServiceHostDNS, ServiceHostWatch}

// WatchRequest names the guest paths (folders under shares, as containers bind-mount them)
// whose host changes the guest wants to hear about. Each request replaces the previous one.
type WatchRequest struct {
	Paths []string `json:"paths"`
}

// File event operations, as the host saw them.
const (
	FileCreate = "create"
	FileWrite  = "write"
	FileRemove = "remove"
	FileRename = "rename"
)

// FileEvent is one changed path (a guest path) and what happened to it.
type FileEvent struct {
	Path string `json:"path"`
	Op   string `json:"op"`
}

// FileEvents is one burst of host changes, coalesced: each path at most once. Error, when
// set, says why the host could not watch (part of) the request.
type FileEvents struct {
	Events []FileEvent `json:"events,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// Addresses the guest serves host services on. They are private addresses on the guest's
// loopback device, reachable from every container network through the guest's routing, as
// Docker Desktop's are (its host gateway is 192.168.65.254).
const (
	// HostGatewayIP is what host.docker.internal (and dockerd's host-gateway) resolves to:
	// the guest agent takes every TCP and UDP connection to it to the host's 127.0.0.1.
	HostGatewayIP = "192.168.65.254"
	// DNSServerIP is the guest's DNS forwarder, the only nameserver in its resolv.conf.
	DNSServerIP = "192.168.65.7"
)

// HostNames resolve to HostGatewayIP in every container while host access is on.
var HostNames = []string{"host.docker.internal", "gateway.docker.internal"}

// HostConnectRequest opens a ServiceHostConnect stream: the port to dial on the host's
// loopback. On the wire it is 3 bytes: 't' or 'u', then the port big-endian.
type HostConnectRequest struct {
	Proto string // "tcp" or "udp"
	Port  uint16
}

// HostUDPIdle ends a host-connect UDP flow that carried nothing either way for this long; the
// guest and the host agent each end their side after it.
const HostUDPIdle = 2 * time.Minute

// Status bytes the host answers a HostConnectRequest with.
const (
	HostConnectOK       byte = 0 // connected; data follows
	HostConnectRefused  byte = 1 // nothing listens there, or the dial failed
	HostConnectDisabled byte = 2 // the machine was created with --host-access=false
)

// WriteHostConnect writes r in one Write.
func WriteHostConnect(w io.Writer, r HostConnectRequest) error {
	var b [3]byte
	switch r.Proto {
	case "tcp":
		b[0] = 't'
	case "udp":
		b[0] = 'u'
	default:
		return fmt.Errorf("host connect: proto %q: want tcp or udp", r.Proto)
	}
	if r.Port == 0 {
		return fmt.Errorf("host connect: port 0")
	}
	binary.BigEndian.PutUint16(b[1:], r.Port)
	_, err := w.Write(b[:])
	return err
}

// ReadHostConnect reads a request written by WriteHostConnect.
func ReadHostConnect(r io.Reader) (HostConnectRequest, error) {
	var b [3]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return HostConnectRequest{}, fmt.Errorf("host connect: read request: %w", err)
	}
	req := HostConnectRequest{Port: binary.BigEndian.Uint16(b[1:])}
	switch b[0] {
	case 't':
		req.Proto = "tcp"
	case 'u':
		req.Proto = "udp"
	default:
		return HostConnectRequest{}, fmt.Errorf("host connect: unknown proto byte %#x", b[0])
	}
	if req.Port == 0 {
		return HostConnectRequest{}, fmt.Errorf("host connect: port 0")
	}
	return req, nil
}
