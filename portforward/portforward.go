// Package portforward exposes guest ports and sockets on the host. It owns the host
// listeners (TCP, UDP, unix sockets) and the published-port set, and reaches the guest only
// through a dialer it is handed, one guest stream per forwarded connection (TCP) or client
// flow (UDP): it knows nothing of drivers or VMs, so it builds and tests everywhere.
//
// Serve forwards one listener to one guest service (the Docker API socket); Forwarder keeps
// the host listeners equal to the set of ports the guest publishes.
package portforward

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// DialFunc opens a stream to a port inside the guest. The stream must support CloseWrite
// for TCP half-close to reach the guest.
type DialFunc func(ctx context.Context, req api.ForwardRequest) (net.Conn, error)

// GuestDialer makes a DialFunc from a guest-service dialer (driver.Driver.DialGuest or
// mux.Client.DialGuest): it opens an api.ServiceForward stream and sends req as one JSON line.
func GuestDialer(dial func(ctx context.Context, service uint32) (net.Conn, error)) DialFunc {
	return func(ctx context.Context, req api.ForwardRequest) (net.Conn, error) {
		c, err := dial(ctx, api.ServiceForward)
		if err != nil {
			return nil, fmt.Errorf("forward to guest %s port %d: %w", req.Proto, req.Port, err)
		}
		line, err := json.Marshal(req)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("forward to guest %s port %d: %w", req.Proto, req.Port, err)
		}
		stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
		_, err = c.Write(append(line, '\n'))
		if !stop() {
			err = ctx.Err()
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("forward to guest %s port %d: send request: %w", req.Proto, req.Port, err)
		}
		return c, nil
	}
}

// Serve forwards every connection accepted on ln to a fresh stream from dial, copying both
// ways with half-close passed on, until ctx ends or ln fails. It owns ln: when ctx ends it
// closes ln and every forwarded connection, and it returns once all of its goroutines have
// exited (nil when ctx ended, else the accept error).
func Serve(ctx context.Context, ln net.Listener, dial func(ctx context.Context) (net.Conn, error)) error {
	return serveTCP(ctx, ctx, ln, dial, nil)
}
