package hostagent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/netstack"
	"github.com/machine-run/machine/portforward"
)

// netPath sends forwarded TCP connections to ports the engine publishes on the guest's
// wildcard address straight into the guest's network stack, with no relay in the guest
// agent: through the forwarding NIC where the driver attached one (driver.ForwardNIC, a
// TCP/IP stack in this process, see hostagent/netstack), else over the hypervisor's NAT
// (driver.NetForwarder, one forward per port). Every other request, and any port neither
// path reaches, goes through the channel. Connections count against auto-pause as channel
// streams do: dialing resumes a paused VM.
type netPath struct {
	fwd     driver.NetForwarder // nil: the driver has no NAT forwards
	channel portforward.DialFunc
	idle    *idler // nil: auto-pause is off
	log     *slog.Logger

	mu     sync.Mutex
	nic    *netstack.Stack   // the forwarding NIC's stack, once the VM runs
	off    bool              // the driver declined every port (driver.ErrUnsupported)
	addrs  map[uint16]string // guest port -> host address of its forward
	failed map[uint16]bool   // guest ports the driver refused (the channel serves them)
	asking map[uint16]*ask   // guest ports whose forward the driver is setting up
}

// ask is one request to the driver for a port's forward, which later dials of that port wait for.
type ask struct {
	done        chan struct{} // closed once the driver has answered
	unpublished bool          // a prune found the port gone meanwhile: the forward must go too
}

func newNetPath(fwd driver.NetForwarder, channel portforward.DialFunc, idle *idler, log *slog.Logger) *netPath {
	return &netPath{fwd: fwd, channel: channel, idle: idle, log: log,
		addrs: map[uint16]string{}, failed: map[uint16]bool{}, asking: map[uint16]*ask{}}
}

// useNIC makes st, the forwarding NIC's stack, the first path; until it stops.
func (p *netPath) useNIC(st *netstack.Stack) {
	p.mu.Lock()
	p.nic = st
	p.mu.Unlock()
}

// stack returns the forwarding NIC's stack while it runs, or nil.
func (p *netPath) stack() *netstack.Stack {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nic == nil {
		return nil
	}
	select {
	case <-p.nic.Done():
		p.nic = nil
	default:
	}
	return p.nic
}

// direct reports whether req is reached over the network: a TCP port the engine's NAT
// delivers from the guest's primary address (see api.ForwardRequest).
func direct(req api.ForwardRequest) bool { return req.Proto == "tcp" && req.IP == "" }

// Dial implements portforward.DialFunc.
func (p *netPath) Dial(ctx context.Context, req api.ForwardRequest) (net.Conn, error) {
	if !direct(req) {
		return p.channel(ctx, req)
	}
	if st := p.stack(); st != nil {
		c, err := p.idle.dial(ctx, func() (net.Conn, error) { return st.Dial(ctx, req.Port) })
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		if errors.Is(err, netstack.ErrNoPeer) {
			// The guest never configured its end (an image older than this host): stop
			// asking, or every connection would wait out ARP first.
			p.mu.Lock()
			if p.nic == st {
				p.nic = nil
			}
			p.mu.Unlock()
			p.log.Warn("port forward: the guest does not answer on the forwarding NIC; forwards take the other paths", "err", err)
		} else {
			p.log.Warn("port forward: forwarding NIC failed; trying the other paths", "guest_port", req.Port, "err", err)
		}
	}
	if p.fwd == nil {
		return p.channel(ctx, req)
	}
	addr, ok := p.addr(ctx, req.Port)
	if !ok {
		return p.channel(ctx, req)
	}
	c, err := p.idle.dial(ctx, func() (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	})
	if err != nil && ctx.Err() == nil {
		p.log.Warn("port forward: network path failed; using the guest channel", "guest_port", req.Port, "addr", addr, "err", err)
		return p.channel(ctx, req)
	}
	return c, err
}

// addr returns the host address forwarded to guestPort, asking the driver for one the first
// time; false sends the port through the channel. The driver is asked without the lock (a
// monitor round trip can take seconds on a loaded host): dials of other ports go on, and
// dials of the same port wait for that one answer.
func (p *netPath) addr(ctx context.Context, guestPort uint16) (string, bool) {
	p.mu.Lock()
	for {
		if a, ok := p.addrs[guestPort]; ok {
			p.mu.Unlock()
			return a, true
		}
		if p.off || p.failed[guestPort] {
			p.mu.Unlock()
			return "", false
		}
		pending, ok := p.asking[guestPort]
		if !ok {
			break
		}
		p.mu.Unlock()
		select {
		case <-pending.done:
		case <-ctx.Done():
			return "", false
		}
		p.mu.Lock()
	}
	mine := &ask{done: make(chan struct{})}
	p.asking[guestPort] = mine
	p.mu.Unlock()

	a, err := p.fwd.ForwardTCP(ctx, guestPort)

	p.mu.Lock()
	delete(p.asking, guestPort)
	close(mine.done)
	stale := err == nil && mine.unpublished
	switch {
	case stale:
	case err == nil:
		p.addrs[guestPort] = a
		p.log.Debug("port forward: network path", "guest_port", guestPort, "addr", a)
	case errors.Is(err, driver.ErrUnsupported):
		p.off = true
		p.log.Debug("port forward: the guest channel carries every forward", "reason", err)
	case ctx.Err() == nil:
		p.failed[guestPort] = true
		p.log.Warn("port forward: no network path; using the guest channel", "guest_port", guestPort, "err", err)
	}
	p.mu.Unlock()
	if stale {
		// Unpublished while the driver was asked: that prune did not see this forward, so
		// remove it now, even if this dial has given up meanwhile (nothing else would); the
		// dial goes through the channel, which finds the port closed.
		p.unforward(context.WithoutCancel(ctx), guestPort, a)
		return "", false
	}
	return a, err == nil
}

func (p *netPath) unforward(ctx context.Context, guestPort uint16, hostAddr string) {
	if err := p.fwd.UnforwardTCP(ctx, hostAddr); err != nil {
		p.log.Warn("port forward: remove network path", "guest_port", guestPort, "err", err)
	}
}

// prune removes the forwards of guest ports no longer published on the wildcard address
// (ports is the guest's full set), so that a host port never leads to a port nobody publishes.
func (p *netPath) prune(ctx context.Context, ports []api.Port) {
	if p.fwd == nil {
		return
	}
	live := map[uint16]bool{}
	for _, port := range ports {
		if req := portforward.GuestTarget(port); direct(req) {
			live[req.Port] = true
		}
	}
	gone := map[uint16]string{}
	p.mu.Lock()
	for gp, a := range p.asking {
		a.unpublished = !live[gp]
	}
	for gp := range p.failed {
		if !live[gp] {
			delete(p.failed, gp)
		}
	}
	for gp, a := range p.addrs {
		if !live[gp] {
			delete(p.addrs, gp)
			gone[gp] = a
		}
	}
	p.mu.Unlock()
	// Outside the lock: dials of other ports do not wait for the hypervisor.
	for gp, a := range gone {
		p.unforward(ctx, gp, a)
	}
}
