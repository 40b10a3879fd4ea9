package hostagent

import (
	"context"
	"fmt"
	"net"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/portforward"
)

// ContextName is the docker CLI context of a machine: "machine" for the default machine,
// "machine-<name>" otherwise.
func ContextName(name string) string {
	if name == "default" {
		return "machine"
	}
	return "machine-" + name
}

// onReady exposes the engine on the host: the Docker API socket. Serve closes the listener
// when ctx ends, which also removes the socket file.
func (a *Agent) onReady(ctx context.Context) error {
	ln, err := listenDocker(a.o.Machine)
	if err != nil {
		return fmt.Errorf("docker API listener: %w", err)
	}
	go portforward.Serve(ctx, ln, func(ctx context.Context) (net.Conn, error) {
		return a.drv.DialGuest(ctx, api.ServiceDocker)
	})
	return nil
}
