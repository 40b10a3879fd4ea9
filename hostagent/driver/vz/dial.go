package vz

import (
	"context"
	"fmt"
	"net"
	"time"
)

// dialer retries a vsock connect until the guest agent accepts or ctx ends. Each attempt
// runs in its own goroutine because vz's Connect takes no context and may not return until
// the guest answers; an attempt that outlives its caller closes the connection it gets.
type dialer struct {
	connect func() (net.Conn, error)
	// stopped is closed when the VM has exited: retrying is pointless then.
	stopped <-chan struct{}

	minBackoff, maxBackoff time.Duration
	attemptTimeout         time.Duration // abandon an attempt that has not answered by then
}

type dialResult struct {
	conn net.Conn
	err  error
}

func (d *dialer) dial(ctx context.Context, service uint32) (net.Conn, error) {
	backoff := d.minBackoff
	var lastErr error
	for {
		conn, err := d.attempt(ctx)
		if err == nil {
			return conn, nil
		}
		select {
		case <-d.stopped:
			return nil, fmt.Errorf("vsock port %d: %w", service, ErrVMStopped)
		default:
		}
		if ctx.Err() != nil {
			return nil, dialGaveUp(ctx, service, lastErr)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, dialGaveUp(ctx, service, lastErr)
		case <-d.stopped:
			return nil, fmt.Errorf("vsock port %d: %w", service, ErrVMStopped)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, d.maxBackoff)
	}
}

func dialGaveUp(ctx context.Context, service uint32, lastErr error) error {
	if lastErr == nil {
		return fmt.Errorf("vsock port %d: %w", service, ctx.Err())
	}
	return fmt.Errorf("vsock port %d: %w (guest agent not answering: %v)", service, ctx.Err(), lastErr)
}

func (d *dialer) attempt(ctx context.Context) (net.Conn, error) {
	ch := make(chan dialResult, 1)
	go func() {
		c, err := d.connect()
		ch <- dialResult{c, err}
	}()
	timer := time.NewTimer(d.attemptTimeout)
	defer timer.Stop()
	var abandon error
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		abandon = ctx.Err()
	case <-d.stopped:
		abandon = ErrVMStopped
	case <-timer.C:
		abandon = fmt.Errorf("connect did not answer within %v", d.attemptTimeout)
	}
	go func() {
		if r := <-ch; r.conn != nil {
			r.conn.Close()
		}
	}()
	return nil, abandon
}
