package portforward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

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
	stop := context.AfterFunc(acceptCtx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if acceptCtx.Err() != nil {
				return nil
			}
			if !retryableAccept(err) {
				ln.Close()
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors: wait for some to be freed, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("port forward: accept", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-acceptCtx.Done():
			}
			continue
		}
		delay = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			proxyConn(connCtx, c, dial, log)
		}()
	}
}

// proxyConn copies between src and a fresh stream from dial until both directions are done
// or ctx ends.
func proxyConn(ctx context.Context, src net.Conn, dial func(context.Context) (net.Conn, error), log *slog.Logger) {
	streamproxy.Proxy(ctx, src, dial, func(err error) {
		log.Warn("port forward: dial guest", "client", src.RemoteAddr().String(), "err", err)
	})
}

// retryableAccept reports accept errors that pass on their own.
func retryableAccept(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		(errors.As(err, &ne) && ne.Timeout())
}
