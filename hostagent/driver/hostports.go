package driver

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/internal/acceptloop"
)

// ServeHostPorts serves the host services on a channel with one port per service (vsock):
// for each of api.HostServices that handler serves it listens with listen and hands every
// connection accepted there to the handler, until ctx ends. It returns once every port
// listens, or with the first listen error (closing the ports it opened). The drivers' code
// that only a Mac can run is just the listen function.
func ServeHostPorts(ctx context.Context, listen func(port uint32) (net.Listener, error), handler func(service uint32) func(net.Conn), log *slog.Logger) error {
	type port struct {
		ln    net.Listener
		serve func(net.Conn)
	}
	var ports []port
	for _, svc := range api.HostServices {
		serve := handler(svc)
		if serve == nil {
			continue
		}
		ln, err := listen(svc)
		if err != nil {
			for _, p := range ports {
				p.ln.Close()
			}
			return fmt.Errorf("host services: listen on vsock port %d: %w", svc, err)
		}
		ports = append(ports, port{ln, serve})
	}
	for _, p := range ports {
		go func() {
			if err := acceptloop.Run(ctx, p.ln, log, p.serve); err != nil && log != nil {
				log.Error("host services: stopped", "port", p.ln.Addr(), "err", err)
			}
		}()
	}
	return nil
}
