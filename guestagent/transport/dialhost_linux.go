package transport

import (
	"context"
	"fmt"
	"net"

	"github.com/mdlayher/vsock"

	"github.com/machine-run/machine/guestagent/api/mux"
)

// DialHost opens a stream to a host service (api.ServiceHost*). On the serial channel it
// waits for a session while none is up (the host is reconnecting), until ctx ends; on vsock
// it dials the host's CID at the service's port.
func (c *Channel) DialHost(ctx context.Context, service uint32) (net.Conn, error) {
	return c.dialHost(ctx, service)
}

func (c *Channel) setSession(s *mux.Server) {
	c.mu.Lock()
	c.session = s
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *Channel) dialHostSerial(ctx context.Context, service uint32) (net.Conn, error) {
	for {
		c.mu.Lock()
		s, changed := c.session, c.changed
		c.mu.Unlock()
		if s != nil {
			return s.DialHost(ctx, service)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("host channel: dial service %d: no session with the host: %w", service, ctx.Err())
		}
	}
}

// dialVsock dials a vsock port, giving up when ctx ends.
func dialVsock(ctx context.Context, cid, port uint32) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := vsock.Dial(cid, port, nil)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
