package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/machine-run/machine/hostagent/driver"
)

// The user network (slirp) carries a host TCP connection straight to a guest port: QEMU
// accepts on a loopback port of the host and connects to the guest's address from its
// gateway. ForwardTCP adds such a rule while the VM runs, through the monitor.
var _ driver.NetForwarder = (*Driver)(nil)

// netdevID is the user network's id in the QEMU command line (see userNetdev).
const netdevID = "net0"

// hostfwdAttempts bounds the retries when the free port picked is taken before QEMU binds it.
const hostfwdAttempts = 5

// ForwardTCP implements driver.NetForwarder with a hostfwd rule on a free loopback port. Over
// vsock (KVM) the channel is the faster path, for bulk transfers by far, so it declines.
func (d *Driver) ForwardTCP(ctx context.Context, guestPort uint16) (string, error) {
	addr, err := d.forwardTCP(ctx, guestPort)
	if err != nil {
		return "", fmt.Errorf("qemu: machine %q: forward guest port %d: %w", d.cfg.Name, guestPort, err)
	}
	return addr, nil
}

func (d *Driver) forwardTCP(ctx context.Context, guestPort uint16) (string, error) {
	if d.host.VsockCID != 0 {
		return "", fmt.Errorf("the vsock channel carries forwards: %w", driver.ErrUnsupported)
	}
	var last error
	for i := 0; i < hostfwdAttempts; i++ {
		port, err := freeLoopbackPort()
		if err != nil {
			return "", err
		}
		out, err := MonitorCommand(ctx, d.host.QMPSocket, hostfwdAddLine(port, guestPort))
		if err != nil {
			return "", err
		}
		if last = hostfwdAddResult(out); last == nil {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
	}
	return "", last
}

// UnforwardTCP implements driver.NetForwarder: it removes the rule ForwardTCP made for hostAddr.
func (d *Driver) UnforwardTCP(ctx context.Context, hostAddr string) error {
	line, err := hostfwdRemoveLine(hostAddr)
	if err != nil {
		return err
	}
	out, err := MonitorCommand(ctx, d.host.QMPSocket, line)
	if err == nil {
		err = hostfwdRemoveResult(out)
	}
	if err != nil {
		return fmt.Errorf("qemu: machine %q: remove forward %s: %w", d.cfg.Name, hostAddr, err)
	}
	return nil
}

func hostfwdAddLine(hostPort int, guestPort uint16) string {
	return fmt.Sprintf("hostfwd_add %s tcp:127.0.0.1:%d-:%d", netdevID, hostPort, guestPort)
}

// hostfwdAddResult reads what the monitor printed for hostfwd_add: nothing on success, else
// why (QEMU 7.2: "Could not set up host forwarding rule '...'").
func hostfwdAddResult(out string) error {
	if out = strings.TrimSpace(out); out != "" {
		return errors.New(out)
	}
	return nil
}

func hostfwdRemoveLine(hostAddr string) (string, error) {
	host, port, err := net.SplitHostPort(hostAddr)
	if err != nil {
		return "", fmt.Errorf("qemu: remove forward %q: %w", hostAddr, err)
	}
	return fmt.Sprintf("hostfwd_remove %s tcp:%s:%s", netdevID, host, port), nil
}

// hostfwdRemoveResult reads what the monitor printed for hostfwd_remove: "host forwarding
// rule for ... removed" on success.
func hostfwdRemoveResult(out string) error {
	if out = strings.TrimSpace(out); !strings.HasSuffix(out, " removed") {
		if out == "" {
			out = "QEMU printed nothing"
		}
		return errors.New(out)
	}
	return nil
}
