package hostagent

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/dockerapi"
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

// onReady exposes the engine on the host: the Docker API socket, through the API
// interceptor (bind mounts of unshared folders are refused, starts wait for their ports).
// Serve closes the listener when ctx ends, which also removes the socket file.
func (a *Agent) onReady(ctx context.Context) error {
	ln, err := listenDocker(a.o.Machine)
	if err != nil {
		return fmt.Errorf("docker API listener: %w", err)
	}
	p := a.dockerProxy()
	go p.Serve(ctx, ln)
	return nil
}

func (a *Agent) dockerProxy() *dockerapi.Proxy {
	binds := &dockerapi.Binds{Machine: a.o.Machine.Name, GOOS: runtime.GOOS}
	for _, s := range driverShares(a.o.Config.Shares, a.o.Config.ReadOnlyShares) {
		binds.Shares = append(binds.Shares, dockerapi.Share{HostPath: s.HostPath, GuestPath: s.GuestPath})
	}
	return &dockerapi.Proxy{
		Dial: func(ctx context.Context) (net.Conn, error) {
			return a.drv.DialGuest(ctx, api.ServiceDocker)
		},
		Binds:     binds,
		WaitPorts: a.waitPorts,
		Logger:    a.log,
	}
}

// waitPorts returns once the host forwards (or has reported failing to forward) every port
// in want that container id publishes, or when ctx ends.
func (a *Agent) waitPorts(ctx context.Context, id string, want []dockerapi.PublishedPort) error {
	for {
		synced := a.portSync.next()
		if missing := missingPorts(a.ports.Status(), id, want); len(missing) == 0 {
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("container %.12s: the host is not forwarding %s yet: %w", id, missing[0], ctx.Err())
		}
		select {
		case <-synced:
		case <-ctx.Done():
		}
	}
}

// missingPorts lists the wanted ports that have no entry of container id in st. An entry in
// the error state counts: the host has said why it cannot forward it.
func missingPorts(st []portforward.Forward, id string, want []dockerapi.PublishedPort) []string {
	var missing []string
	for _, w := range want {
		if !slices.ContainsFunc(st, func(f portforward.Forward) bool {
			return f.Container == id && f.Proto == w.Proto && f.Port == w.Port && f.State != ""
		}) {
			missing = append(missing, fmt.Sprintf("%s port %d", w.Proto, w.Port))
		}
	}
	return missing
}
