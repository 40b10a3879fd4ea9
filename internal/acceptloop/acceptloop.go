// Package acceptloop is the one accept loop of every stream server in machine (host port
// forwards and Docker socket, guest exec, forward and Docker services): it stops when its
// context ends, rides out a shortage of file descriptors instead of failing, and returns
// only after every connection handler has returned.
package acceptloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Run accepts on ln and calls handle in a new goroutine for each connection. When ctx ends it
// closes ln and returns nil; a listener closed by someone else also ends it with nil; any
// other accept error closes ln and is returned. Either way Run first waits for the handlers,
// which must themselves end (for instance when their own context ends). log may be nil.
func Run(ctx context.Context, ln net.Listener, log *slog.Logger, handle func(net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !retryable(err) {
				ln.Close()
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors: wait for some to be freed, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if log != nil {
				log.Warn("accept", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			continue
		}
		delay = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(c)
		}()
	}
}

// retryable reports accept errors that pass on their own.
func retryable(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		(errors.As(err, &ne) && ne.Timeout())
}
