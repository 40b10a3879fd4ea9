//go:build !windows

package hostagent

import (
	"net"

	"github.com/machine-run/machine/hostagent/store"
)

// listenDocker serves the machine's Docker API on docker.sock in its private folder.
func listenDocker(m *store.Machine) (net.Listener, error) {
	return listenPrivate(m.DockerSocket())
}
