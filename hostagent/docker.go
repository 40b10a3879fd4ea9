package hostagent

import (
	"context"
	"fmt"
	"net"
	"os"

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

// onReady exposes the engine on the host: the Docker API socket.
func (a *Agent) onReady(ctx context.Context) error {
	path := a.o.Machine.DockerSocket()
	ln, err := listenDocker(a.o.Machine)
	if err != nil {
		return fmt.Errorf("docker API listener: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
		os.Remove(path)
	}()
	go portforward.Serve(ctx, ln, func(ctx context.Context) (net.Conn, error) {
		return a.drv.DialGuest(ctx, api.ServiceDocker)
	})
	return nil
}
