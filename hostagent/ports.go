package hostagent

import (
	"context"
	"net/http"
	"sync"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/netstack"
	"github.com/machine-run/machine/portforward"
)

const pathPorts = "/v1/ports" // GET: []portforward.Forward

// newForwarder mirrors published ports on the host; raw is the driver itself (a.drv may wrap
// it for auto-pause). Wildcard TCP publishes go straight into the guest's network where the
// driver offers a way (see netPath).
func (a *Agent) newForwarder(raw driver.Driver) *portforward.Forwarder {
	dial := portforward.GuestDialer(a.drv.DialGuest)
	nf, _ := raw.(driver.NetForwarder)
	_, nic := raw.(driver.ForwardNIC)
	if nf != nil || nic {
		a.net = newNetPath(nf, dial, a.idle, a.log)
		dial = a.net.Dial
	}
	return &portforward.Forwarder{
		Dial:                 dial,
		PublishAllInterfaces: a.o.Config.PublishAllInterfaces,
		Logger:               a.log,
	}
}

// startForwardNIC runs the TCP/IP stack on the host end of the forwarding NIC of the VM raw
// has just started, if it has one, and returns what stops it.
func (a *Agent) startForwardNIC(raw driver.Driver) func() error {
	fn, ok := raw.(driver.ForwardNIC)
	if !ok || a.net == nil {
		return nil
	}
	link := fn.ForwardNIC()
	if link == nil {
		return nil
	}
	st, err := netstack.New(link, netstack.HostEnd(a.log))
	if err != nil {
		link.Close()
		a.log.Warn("port forward: no forwarding NIC", "err", err)
		return nil
	}
	a.net.useNIC(st)
	return st.Close
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
