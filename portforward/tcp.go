package portforward

import (
	"context"
	"log/slog"
	"net"

	"github.com/machine-run/machine/internal/acceptloop"
	"github.com/machine-run/machine/internal/streamproxy"
)

// serveTCP accepts on ln until acceptCtx ends (then ln is closed at once: new connections
// are refused) and proxies each connection to a stream from dial. Connections already
// accepted go on until they finish or connCtx ends, which closes both of their ends.
// serveTCP returns when the accept loop has stopped and every connection is done.
func serveTCP(acceptCtx, connCtx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error), log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	return acceptloop.Run(acceptCtx, ln, log, func(c net.Conn) { proxyConn(connCtx, c, dial, log) })
}

// proxyConn copies between src and a fresh stream from dial until both directions are done
// or ctx ends.
func proxyConn(ctx context.Context, src net.Conn, dial func(context.Context) (net.Conn, error), log *slog.Logger) {
	streamproxy.Proxy(ctx, src, dial, func(err error) {
		log.Warn("port forward: dial guest", "client", src.RemoteAddr().String(), "err", err)
	})
}
