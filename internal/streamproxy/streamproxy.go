// Package streamproxy joins two stream connections with inetaf/tcpproxy, half-close passed
// on in both directions. The host's port forwarder and the guest's forward and Docker
// services all proxy this way: one fresh destination stream per source connection.
package streamproxy

import (
	"context"
	"net"
	"sync"

	"github.com/inetaf/tcpproxy"
)

// Dial opens the destination for one source connection.
type Dial func(ctx context.Context) (net.Conn, error)

// Proxy copies between src and a connection from dial until both directions are done, or
// ctx ends, which closes both ends at once. If dial fails, onDialError (may be nil) is told
// and src is closed: its peer sees the connection end without data.
func Proxy(ctx context.Context, src net.Conn, dial Dial, onDialError func(error)) {
	var mu sync.Mutex
	var dst net.Conn
	stop := context.AfterFunc(ctx, func() {
		src.Close()
		mu.Lock()
		if dst != nil {
			dst.Close()
		}
		mu.Unlock()
	})
	defer stop()
	dp := &tcpproxy.DialProxy{
		DialContext: func(dctx context.Context, _, _ string) (net.Conn, error) {
			// DialProxy's context carries its dial timeout; ctx ending must cancel it too.
			dctx, cancel := context.WithCancel(dctx)
			defer cancel()
			unlink := context.AfterFunc(ctx, cancel)
			defer unlink()
			c, err := dial(dctx)
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
			if onDialError != nil {
				onDialError(err)
			}
			src.Close()
		},
	}
	dp.HandleConn(src)
}
