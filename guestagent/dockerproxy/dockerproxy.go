// Package dockerproxy serves api.ServiceDocker: every stream the host opens is joined to a
// new connection to the engine's unix socket, half-close included (docker run -i and build
// contexts end their input with CloseWrite).
package dockerproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

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
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("docker proxy: accept: %w", err)
		}
		go streamproxy.Proxy(ctx, c, dial, onErr)
	}
}
