// Package forward is the guest end of api.ServiceForward: for every stream the host opens it
// reads one api.ForwardRequest line, connects to that TCP or UDP port inside the guest and
// relays until either side is done. An empty address means the guest's own primary address,
// where the engine's NAT delivers to containers published on a wildcard address; loopback
// publishes are reached on loopback through docker-proxy. The host never needs container
// addresses.
//
// It consumes a plain net.Listener (a vsock or mux listener in the agent, a loopback TCP
// listener in tests) and knows nothing of the transport.
package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/internal/acceptloop"
)

// maxRequestLine bounds the request line so a confused peer cannot make the agent buffer
// without end.
const maxRequestLine = 4 << 10

// requestTimeout bounds how long a stream may take to send its request line.
const requestTimeout = 10 * time.Second

// dialTimeout bounds the connection to the target port inside the guest.
const dialTimeout = 10 * time.Second

// Serve relays every stream accepted on ln until ctx ends or ln fails. It owns ln: when ctx
// ends it closes ln and every relayed connection, and it returns only after all of its
// relays have ended (nil when ctx ended, else the accept error).
func Serve(ctx context.Context, ln net.Listener) error {
	if err := acceptloop.Run(ctx, ln, nil, func(c net.Conn) { handle(ctx, c) }); err != nil {
		return fmt.Errorf("forward service: %w", err)
	}
	return nil
}

func handle(ctx context.Context, c net.Conn) {
	req, err := readRequest(c)
	if err != nil {
		slog.Debug("forward: bad request", "err", err)
		c.Close()
		return
	}
	target := net.JoinHostPort(targetIP(req.IP), strconv.Itoa(int(req.Port)))
	switch req.Proto {
	case "tcp":
		relayTCP(ctx, c, target)
	case "udp":
		relayUDP(ctx, c, target)
	default:
		slog.Debug("forward: unknown proto", "proto", req.Proto)
		c.Close()
	}
}

// targetIP resolves the address to dial. Empty means the guest's own primary address, where
// the engine's NAT rules deliver straight to a container published on the wildcard address;
// loopback is the fallback when the guest has no other address.
func targetIP(ip string) string {
	if ip != "" {
		return ip
	}
	if a := primaryIPv4(); a != "" {
		return a
	}
	return "127.0.0.1"
}

// primaryIPv4 returns the first IPv4 address of an up, non-loopback interface.
func primaryIPv4() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || strings.HasPrefix(ifc.Name, "docker") || strings.HasPrefix(ifc.Name, "br-") || strings.HasPrefix(ifc.Name, "veth") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return ""
}

// readRequest reads the request line one byte at a time, so no byte of the relayed data
// that follows it is consumed.
func readRequest(c net.Conn) (api.ForwardRequest, error) {
	var req api.ForwardRequest
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	defer c.SetReadDeadline(time.Time{})
	var line bytes.Buffer
	var b [1]byte
	for {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return req, fmt.Errorf("forward request: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		if line.Len() == maxRequestLine {
			return req, fmt.Errorf("forward request: line longer than %d bytes", maxRequestLine)
		}
		line.WriteByte(b[0])
	}
	if err := json.Unmarshal(line.Bytes(), &req); err != nil {
		return req, fmt.Errorf("forward request %q: %w", line.Bytes(), err)
	}
	if req.Port == 0 {
		return req, errors.New("forward request: port 0")
	}
	return req, nil
}
