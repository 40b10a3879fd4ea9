package forward

import (
	"context"
	"log/slog"
	"net"
	"sync"

	"github.com/inetaf/tcpproxy"
)

// relayTCP connects stream to target and copies both ways, passing each half-close on, until
// both directions are done or ctx ends.
func relayTCP(ctx context.Context, stream net.Conn, target string) {
	var mu sync.Mutex
	var dst net.Conn
	stop := context.AfterFunc(ctx, func() {
		stream.Close()
		mu.Lock()
		if dst != nil {
			dst.Close()
		}
		mu.Unlock()
	})
	defer stop()
	dp := &tcpproxy.DialProxy{
		Addr:        target,
		DialTimeout: dialTimeout,
		DialContext: func(dctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			dst = c
			mu.Unlock()
			if ctx.Err() != nil {
				c.Close()
			}
			return c, nil
		},
		OnDialError: func(src net.Conn, err error) {
			// The host sees the stream end without data, as a client would see a reset.
			slog.Debug("forward: dial", "target", target, "err", err)
			src.Close()
		},
	}
	dp.HandleConn(stream)
}
