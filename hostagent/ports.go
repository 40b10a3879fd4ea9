package hostagent

import (
	"context"
	"net/http"
	"sync"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/portforward"
)

const pathPorts = "/v1/ports" // GET: []portforward.Forward

// newForwarder mirrors published ports on the host; raw is the driver itself (a.drv may wrap
// it for auto-pause). Wildcard TCP publishes take the hypervisor's network where the driver
// offers one (see netPath).
func (a *Agent) newForwarder(raw driver.Driver) *portforward.Forwarder {
	dial := portforward.GuestDialer(a.drv.DialGuest)
	if nf, ok := raw.(driver.NetForwarder); ok {
		a.net = newNetPath(nf, dial, a.idle, a.log)
		dial = a.net.Dial
	}
	return &portforward.Forwarder{
		Dial:                 dial,
		PublishAllInterfaces: a.o.Config.PublishAllInterfaces,
		Logger:               a.log,
	}
}

// onPorts receives the guest's full set of published ports and mirrors it on the host.
func (a *Agent) onPorts(ctx context.Context, ports []api.Port) {
	if err := a.ports.Sync(ctx, ports); err != nil {
		a.log.Warn("port sync failed", "err", err)
	}
	if a.net != nil {
		a.net.prune(ctx, ports)
	}
	a.portSync.fire()
}

// syncSignal tells waiters that a port sync has happened. The zero value is ready.
type syncSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// next returns a channel closed at the next fire.
func (s *syncSignal) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *syncSignal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

func (a *Agent) servePorts(w http.ResponseWriter, _ *http.Request) {
	st := a.ports.Status()
	if st == nil {
		st = []portforward.Forward{}
	}
	writeJSON(w, st)
}
