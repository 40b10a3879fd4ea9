package forward

import (
	"context"
	"log/slog"
	"net"

	"github.com/machine-run/machine/internal/streamproxy"
)

// relayTCP connects stream to target and copies both ways, passing each half-close on, until
// both directions are done or ctx ends. A refused target ends the stream without data, as a
// client would see a reset.
func relayTCP(ctx context.Context, stream net.Conn, target string) {
	streamproxy.Proxy(ctx, stream, func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: dialTimeout}
		return d.DialContext(ctx, "tcp", target)
	}, func(err error) { slog.Debug("forward: dial", "target", target, "err", err) })
}
