// Package dockerproxy serves api.ServiceDocker: every stream the host opens is joined to a
// new connection to the engine's unix socket, half-close included (docker run -i and build
// contexts end their input with CloseWrite).
package dockerproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/machine-run/machine/internal/acceptloop"
	"github.com/machine-run/machine/internal/streamproxy"
)

// DefaultSocket is the engine's API socket inside the guest.
const DefaultSocket = "/var/run/docker.sock"

// Serve accepts streams on l and proxies each to the unix socket at socket until ctx ends or
// l is closed.
func Serve(ctx context.Context, l net.Listener, socket string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		return d.DialContext(ctx, "unix", socket)
	}
	onErr := func(err error) { log.Warn("docker proxy: engine socket", "socket", socket, "err", err) }
	if err := acceptloop.Run(ctx, l, log, func(c net.Conn) { streamproxy.Proxy(ctx, c, dial, onErr) }); err != nil {
		return fmt.Errorf("docker proxy: %w", err)
	}
	return nil
}
