package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/machine-run/machine/guestagent/api/mux"
	"github.com/machine-run/machine/internal/atomicfile"
)

// The agent channel is QEMU's end of the virtio-serial port, a socket chardev the host agent
// connects to. On Linux and macOS it is a unix socket in the machine's private folder. On
// Windows it is a loopback TCP port (QEMU's Windows build cannot be relied on for unix socket
// chardevs), which every local user can reach: there a random token must be the first line
// the guest reads, or it hangs up. Every serial channel gets a token, so the path Windows
// depends on runs in every Linux boot too; QEMU passes it to the guest through fw_cfg from a
// file only the user can read (bootparams.TokenFwCfgName).

// agentSocketPath is the unix socket of the agent channel, or "" where the channel is a
// loopback TCP port.
func agentSocketPath(goos, dir string) string {
	if goos == "windows" {
		return ""
	}
	return filepath.Join(dir, "agent.sock")
}

// qmpSocketPath is where QEMU serves QMP: a unix socket in the machine's folder, which only
// the user can open, on every OS (Go and QEMU 7.2+ both speak AF_UNIX on Windows).
func qmpSocketPath(dir string) string { return filepath.Join(dir, "qmp.sock") }

// agentChardev is the -chardev value of the agent channel.
func agentChardev(host Host) (string, error) {
	if host.AgentSocket != "" {
		return "socket,id=agent,server=on,wait=off,path=" + qemuPath(host.OS, host.AgentSocket), nil
	}
	if host.AgentPort <= 0 || host.AgentPort > 65535 {
		return "", fmt.Errorf("qemu: agent channel: neither a socket path nor a TCP port (port %d)", host.AgentPort)
	}
	if host.Token == "" {
		return "", fmt.Errorf("qemu: agent channel on TCP port %d: no token (any local user could reach the guest agent)", host.AgentPort)
	}
	// nodelay: the channel carries small interactive frames (yamux headers, keystrokes).
	return "socket,id=agent,host=127.0.0.1,port=" + strconv.Itoa(host.AgentPort) + ",server=on,wait=off,nodelay=on", nil
}

// newToken returns 128 random bits as 32 hex digits.
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("qemu: channel token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// freeLoopbackPort asks the OS for a free loopback TCP port. Another process could take it
// before QEMU binds it: a channel port then fails the start with QEMU's log, a hostfwd port
// is picked again (ForwardTCP).
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// prepareChannel picks the loopback port of a TCP agent channel and the token of every
// serial channel, and writes the token to TokenFile (mode 0600) for QEMU; it does nothing
// more for vsock.
func (h *Host) prepareChannel() error {
	if h.VsockCID != 0 {
		return nil
	}
	if h.AgentSocket == "" {
		port, err := freeLoopbackPort()
		if err != nil {
			return fmt.Errorf("qemu: agent channel: %w", err)
		}
		h.AgentPort = port
	}
	token, err := newToken()
	if err != nil {
		return err
	}
	h.Token = token
	if h.TokenFile != "" {
		if err := atomicfile.WriteFile(h.TokenFile, []byte(token), 0o600); err != nil {
			return fmt.Errorf("qemu: channel token: %w", err)
		}
	}
	return nil
}

// agentAddr is the network and address of the agent channel, for dialing.
func (h Host) agentAddr() (network, addr string) {
	if h.AgentSocket != "" {
		return "unix", h.AgentSocket
	}
	return "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.AgentPort))
}

// dialAgent connects to QEMU's agent chardev, which appears shortly after QEMU starts, and
// presents the token when there is one. It gives up when exited closes (QEMU died) or ctx
// ends.
func dialAgent(ctx context.Context, h Host, exited <-chan struct{}) (net.Conn, error) {
	network, addr := h.agentAddr()
	delay := 5 * time.Millisecond
	for {
		var dialer net.Dialer
		conn, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			if err := sendPreamble(conn, h.Token); err != nil {
				conn.Close()
				return nil, fmt.Errorf("qemu: channel %s: %w", addr, err)
			}
			return conn, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("qemu: exited before its channel %s was ready", addr)
		case <-ctx.Done():
			return nil, fmt.Errorf("qemu: channel %s: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// sendPreamble starts a carrier: the preamble that lets the guest find where this session
// begins, then the token line the guest checks (when there is one).
func sendPreamble(w io.Writer, token string) error {
	p := mux.Preamble
	if token != "" {
		p += token + "\n"
	}
	if _, err := io.WriteString(w, p); err != nil {
		return fmt.Errorf("send preamble: %w", err)
	}
	return nil
}
