package boot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/guestagent/reaper"
)

// SetupNetwork brings up loopback and configures the first NIC for mode ("user", "dhcp",
// "none"). It returns the NIC's name. For "dhcp" the lease is kept, renewed and replaced in
// the background for as long as ctx lives; without one after dhcp.DefaultGiveUp the error
// wraps dhcp.ErrNoLease and the client keeps trying.
func SetupNetwork(ctx context.Context, r *reaper.Reaper, log *slog.Logger, mode string) (string, error) {
	if mode == "none" {
		_, err := r.Output(ctx, exec.Command("ip", "link", "set", "lo", "up"))
		return "", err
	}
	nic, err := waitNIC(ctx, "/sys/class/net", 10*time.Second)
	if err != nil {
		r.Output(ctx, exec.Command("ip", "link", "set", "lo", "up"))
		return "", err
	}
	switch mode {
	case "user":
		batch := filepath.Join(os.TempDir(), "machine-net.ip")
		if err := os.WriteFile(batch, []byte(UserNetBatch(nic)), 0o600); err != nil {
			return nic, fmt.Errorf("network: %w", err)
		}
		defer os.Remove(batch)
		if _, err := r.Output(ctx, exec.Command("ip", "-batch", batch)); err != nil {
			return nic, fmt.Errorf("network %s: %w", nic, err)
		}
		return nic, WriteResolvConf("/", UserDNS)
	case "dhcp":
		r.Output(ctx, exec.Command("ip", "link", "set", "lo", "up"))
		r.Output(ctx, exec.Command("ip", "link", "set", nic, "up"))
		return nic, setupDHCP(ctx, r, log, nic)
	}
	return nic, fmt.Errorf("network: unknown mode %q", mode)
}

// waitNIC returns the first network interface other than lo and the forwarding NIC, waiting
// for the driver to register it.
func waitNIC(ctx context.Context, sysNet string, timeout time.Duration) (string, error) {
	return waitInterface(ctx, sysNet, timeout, "network interface", func(n string) bool {
		return n != "lo" && !isVirtual(sysNet, n) && !isForwardNIC(sysNet, n)
	})
}

// SetupForwardNIC configures the forwarding NIC (see bootparams.ForwardNICMAC), which the
// host agent reaches published ports through, and returns its name.
func SetupForwardNIC(ctx context.Context, r *reaper.Reaper) (string, error) {
	const sysNet = "/sys/class/net"
	nic, err := waitInterface(ctx, sysNet, 10*time.Second, "forwarding NIC ("+bootparams.ForwardNICMAC+")", func(n string) bool {
		return isForwardNIC(sysNet, n)
	})
	if err != nil {
		return "", err
	}
	batch := filepath.Join(os.TempDir(), "machine-fwdnic.ip")
	if err := os.WriteFile(batch, []byte(ForwardNICBatch(nic)), 0o600); err != nil {
		return nic, fmt.Errorf("forwarding NIC: %w", err)
	}
	defer os.Remove(batch)
	if _, err := r.Output(ctx, exec.Command("ip", "-batch", batch)); err != nil {
		return nic, fmt.Errorf("forwarding NIC %s: %w", nic, err)
	}
	return nic, nil
}

// waitInterface returns the first interface in sysNet, by name, that match accepts.
func waitInterface(ctx context.Context, sysNet string, timeout time.Duration, what string, match func(string) bool) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := os.ReadDir(sysNet)
		var names []string
		for _, e := range ents {
			if match(e.Name()) {
				names = append(names, e.Name())
			}
		}
		if len(names) > 0 {
			sort.Strings(names)
			return names[0], nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("network: no %s appeared within %v (virtio_net loaded?)", what, timeout)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// isForwardNIC reports whether name is the forwarding NIC, by its MAC address.
func isForwardNIC(sysNet, name string) bool {
	b, err := os.ReadFile(filepath.Join(sysNet, name, "address"))
	return err == nil && strings.TrimSpace(string(b)) == bootparams.ForwardNICMAC
}

// isVirtual reports interfaces with no device behind them (bridges, veths, tunnels).
func isVirtual(sysNet, name string) bool {
	_, err := os.Stat(filepath.Join(sysNet, name, "device"))
	return err != nil
}
