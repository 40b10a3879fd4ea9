package boot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/machine-run/machine/guestagent/dhcp"
	"github.com/machine-run/machine/guestagent/reaper"
)

// setupDHCP configures nic from a DHCP lease and keeps the lease for as long as ctx lives.
// Without a lease within dhcp.DefaultGiveUp it returns an error wrapping dhcp.ErrNoLease,
// so boot goes on, and the client keeps trying in the background.
func setupDHCP(ctx context.Context, r *reaper.Reaper, log *slog.Logger, nic string) error {
	host, _ := os.Hostname()
	c := &dhcp.Client{
		Iface:    nic,
		Hostname: host,
		Log:      log,
		Apply: func(ctx context.Context, prev, next dhcp.Lease) error {
			return applyLease(ctx, r, log, nic, prev, next)
		},
	}
	if _, err := c.Start(ctx); err != nil {
		return fmt.Errorf("network %s: %w", nic, err)
	}
	return nil
}

// applyLease moves nic from lease prev (zero the first time) to next: the old address goes
// first, so a new one in the same subnet is not removed with it as a secondary.
func applyLease(ctx context.Context, r *reaper.Reaper, log *slog.Logger, nic string, prev, next dhcp.Lease) error {
	if prev.Addr.IsValid() && prev.Addr != next.Addr {
		if _, err := r.Output(ctx, exec.Command("ip", "addr", "del", prev.Addr.String(), "dev", nic)); err != nil {
			log.Warn("network: remove the previous lease's address", "addr", prev.Addr, "err", err)
		}
	}
	batch := filepath.Join(os.TempDir(), "machine-dhcp.ip")
	if err := os.WriteFile(batch, []byte(LeaseNetBatch(nic, next)), 0o600); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	defer os.Remove(batch)
	if _, err := r.Output(ctx, exec.Command("ip", "-batch", batch)); err != nil {
		return fmt.Errorf("network %s: %w", nic, err)
	}
	dns := make([]string, 0, len(next.DNS))
	for _, a := range next.DNS {
		dns = append(dns, a.String())
	}
	if len(dns) == 0 && next.Router.IsValid() {
		// NAT gateways forward DNS; better than a resolv.conf with no server at all.
		dns = append(dns, next.Router.String())
	}
	return WriteResolvConf("/", dns...)
}

// LeaseNetBatch is the `ip -batch` script that configures nic for lease l. It uses replace,
// not add, so a renewal that changes nothing but the router is still applied cleanly.
func LeaseNetBatch(nic string, l dhcp.Lease) string {
	s := fmt.Sprintf("link set lo up\nlink set %[1]s up\naddr replace %[2]s brd + dev %[1]s\n", nic, l.Addr)
	if l.Router.IsValid() {
		s += fmt.Sprintf("route replace default via %s dev %s\n", l.Router, nic)
	}
	return s
}
