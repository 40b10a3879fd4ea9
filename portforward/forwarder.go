package portforward

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// Defaults for the Forwarder's zero fields.
const (
	DefaultUDPIdleTimeout = 60 * time.Second
	DefaultDrainTimeout   = 10 * time.Second
	DefaultRetryInterval  = time.Second
	// DefaultMaxForwards caps how many ports one guest may have bound on the host.
	DefaultMaxForwards = 1024
	// DefaultMaxBindAttempts bounds the binds of a busy host port: about 2 minutes.
	DefaultMaxBindAttempts = 12
	// maxRetryInterval caps the doubling wait between binds of a busy host port.
	maxRetryInterval = 15 * time.Second
)

// Forwarder keeps host listeners equal to the set of ports the guest publishes. Set Dial
// before the first Sync; other fields are optional. Its methods are safe for concurrent use.
type Forwarder struct {
	// Dial opens streams into the guest (see GuestDialer).
	Dial DialFunc
	// PublishAllInterfaces binds ports published on a wildcard address to the host's
	// wildcard instead of its loopback.
	PublishAllInterfaces bool
	// UDPIdleTimeout ends a UDP client flow without datagrams either way for this long.
	UDPIdleTimeout time.Duration
	// DrainTimeout is how long TCP connections of a removed port may go on before they are
	// closed; the port refuses new connections at once.
	DrainTimeout time.Duration
	// RetryInterval is the first wait before binding a busy host port again; it doubles up
	// to 15 s (or RetryInterval, if larger).
	RetryInterval time.Duration
	// MaxBindAttempts is how many times a busy host port is tried before it is given up
	// (reported in Status, not retried until the guest publishes it again); 0 means
	// DefaultMaxBindAttempts.
	MaxBindAttempts int
	// MaxForwards caps the ports bound on the host: the guest decides what is published,
	// so a runaway container must not exhaust the host's ports and descriptors. Ports over
	// the cap are reported in Status. 0 means DefaultMaxForwards.
	MaxForwards int
	// Logger receives warnings (busy ports, failed guest dials); nil means slog.Default().
	Logger *slog.Logger

	mu     sync.Mutex
	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	closed bool
	fwds   map[portKey]*forward // current set, including rejected entries
	wg     sync.WaitGroup       // one per live forward's goroutine
}

// States of a Forward.
const (
	StateForwarding = "forwarding"
	StateError      = "error"
)

// Forward is the status of one published port. Its JSON form is an API.
type Forward struct {
	Proto string `json:"proto"`
	// GuestIP and Port are the address the container published on inside the guest.
	GuestIP string `json:"guest_ip"`
	Port    uint16 `json:"port"`
	// HostAddr is where the host listens ("127.0.0.1:8080"); empty for a rejected entry.
	HostAddr  string `json:"host_addr,omitempty"`
	Container string `json:"container"`
	State     string `json:"state"`
	// Error says why the port is not forwarded (a busy host port, an invalid entry).
	Error string `json:"error,omitempty"`
	// Retrying is set while a failed bind is tried again.
	Retrying bool `json:"retrying,omitempty"`
}

// portKey identifies a published port across Syncs.
type portKey struct {
	proto, ip string
	port      uint16
}

// hostKey is a host socket address; two ports mapping to one cannot both be forwarded.
type hostKey struct {
	proto string
	addr  netip.AddrPort
}

func keyOf(p api.Port) portKey { return portKey{p.Proto, p.HostIP, p.HostPort} }

// forward is one entry of the set: a live port with its own goroutine, or a rejected entry.
type forward struct {
	port  api.Port
	bind  netip.AddrPort // zero for a rejected entry
	guest api.ForwardRequest

	cancelAccept context.CancelFunc // nil for a rejected entry
	cancelConns  context.CancelFunc

	mu       sync.Mutex
	state    string
	err      string
	retrying bool
	current  io.Closer // the bound listener or socket
	removed  bool
}

func (f *Forwarder) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Sync makes the forwarded set equal to ports, the guest's full current set: it closes the
// listeners of ports no longer in it and binds new ones before it returns. A port that cannot
// be bound (a busy host port) or is invalid is reported in Status, never returned; a busy
// port is bound again later. Sync fails only after Close.
func (f *Forwarder) Sync(ctx context.Context, ports []api.Port) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("port forwarder: sync: %w", net.ErrClosed)
	}
	if f.Dial == nil {
		return errors.New("port forwarder: sync: Dial is not set")
	}
	if f.ctx == nil {
		f.ctx, f.cancel = context.WithCancel(context.Background())
		f.fwds = map[portKey]*forward{}
	}

	want := make(map[portKey]api.Port, len(ports))
	for _, p := range ports {
		if _, dup := want[keyOf(p)]; !dup {
			want[keyOf(p)] = p
		}
	}
	// Removals first, so a port that moves between entries can be bound again at once.
	// Rejected entries are judged afresh each time: the conflict may be gone.
	for k, fw := range f.fwds {
		if _, ok := want[k]; !ok || fw.cancelAccept == nil {
			f.remove(fw)
			delete(f.fwds, k)
		}
	}
	claimed := map[hostKey]portKey{}
	started := 0 // forwards that hold or try for a host port
	for k, fw := range f.fwds {
		if fw.cancelAccept != nil {
			started++
		}
		fw.mu.Lock()
		fw.port.Container = want[k].Container // a new container may own the same port
		fw.mu.Unlock()
		claimed[hostKey{k.proto, fw.bind}] = k
	}
	for _, p := range ports {
		k := keyOf(p)
		if _, ok := f.fwds[k]; ok {
			continue
		}
		fw := &forward{port: p, guest: GuestTarget(p)}
		f.fwds[k] = fw
		if err := validate(p); err != nil {
			fw.reject(err.Error())
			continue
		}
		fw.bind, _ = bindAddr(p.HostIP, p.HostPort, f.PublishAllInterfaces)
		claimKey := hostKey{p.Proto, fw.bind}
		if other, ok := claimed[claimKey]; ok {
			fw.reject(fmt.Sprintf("host address %s %s already forwards guest address %s",
				p.Proto, fw.bind, net.JoinHostPort(other.ip, fmt.Sprint(other.port))))
			continue
		}
		if limit := f.maxForwards(); started >= limit {
			fw.reject(fmt.Sprintf("not forwarded: the guest publishes more than %d ports, the host's limit", limit))
			continue
		}
		started++
		claimed[claimKey] = k
		f.start(ctx, fw)
	}
	return nil
}

func (f *Forwarder) maxForwards() int {
	if f.MaxForwards > 0 {
		return f.MaxForwards
	}
	return DefaultMaxForwards
}

func (fw *forward) reject(reason string) {
	fw.state, fw.err = StateError, reason
}

// start binds fw once now, so Status is meaningful when Sync returns, and leaves the rest of
// its life (serving, rebinding a busy port) to a goroutine.
func (f *Forwarder) start(ctx context.Context, fw *forward) {
	connCtx, cancelConns := context.WithCancel(f.ctx)
	acceptCtx, cancelAccept := context.WithCancel(connCtx)
	fw.cancelAccept, fw.cancelConns = cancelAccept, cancelConns
	first, err := fw.listen(ctx)
	fw.setBound(err, err != nil)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer cancelConns()
		f.run(acceptCtx, connCtx, fw, first)
	}()
}

// remove closes fw's listener now (new connections are refused) and gives its in-flight
// connections DrainTimeout to finish.
func (f *Forwarder) remove(fw *forward) {
	if fw.cancelAccept == nil {
		return
	}
	fw.mu.Lock()
	fw.removed = true
	cur := fw.current
	fw.mu.Unlock()
	fw.cancelAccept()
	if cur != nil {
		cur.Close()
	}
	time.AfterFunc(orDefault(f.DrainTimeout, DefaultDrainTimeout), fw.cancelConns)
}

// run serves fw's bound socket and binds it again when it fails, until acceptCtx ends.
func (f *Forwarder) run(acceptCtx, connCtx context.Context, fw *forward, bound io.Closer) {
	log := f.logger().With("proto", fw.port.Proto, "addr", fw.bind.String())
	first := orDefault(f.RetryInterval, DefaultRetryInterval)
	attempts := f.MaxBindAttempts
	if attempts <= 0 {
		attempts = DefaultMaxBindAttempts
	}
	delay := first
	failed := 0
	for acceptCtx.Err() == nil {
		if bound == nil {
			var err error
			bound, err = fw.listen(acceptCtx)
			if acceptCtx.Err() != nil {
				return
			}
			if err != nil {
				failed++
			}
			if err != nil && failed >= attempts {
				fw.setBound(fmt.Errorf("%w; gave up after %d attempts: free the host port, then restart the container", err, failed), false)
				log.Warn("port forward: bind: giving up", "err", err, "attempts", failed)
				return
			}
			fw.setBound(err, err != nil)
		}
		if bound == nil {
			log.Warn("port forward: bind", "err", fw.status().Error, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-acceptCtx.Done():
			}
			delay = min(2*delay, max(maxRetryInterval, first))
			continue
		}
		delay, failed = first, 0
		dial := func(ctx context.Context) (net.Conn, error) { return f.Dial(ctx, fw.guest) }
		var err error
		switch l := bound.(type) {
		case net.Listener:
			err = serveTCP(acceptCtx, connCtx, l, dial, log)
		case net.PacketConn:
			err = serveUDP(acceptCtx, l, dial, orDefault(f.UDPIdleTimeout, DefaultUDPIdleTimeout), log)
		}
		bound = nil
		if acceptCtx.Err() == nil {
			fw.setBound(err, true)
		}
	}
}

// listen binds fw's host address and records the socket so remove can close it at once.
func (fw *forward) listen(ctx context.Context) (io.Closer, error) {
	var c io.Closer
	var err error
	if fw.port.Proto == ProtoUDP {
		c, err = listenUDP(ctx, fw.bind)
	} else {
		c, err = listenTCP(ctx, fw.bind)
	}
	if err != nil {
		return nil, err
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.removed {
		c.Close()
		return nil, fmt.Errorf("%s %s: %w", fw.port.Proto, fw.bind, net.ErrClosed)
	}
	fw.current = c
	return c, nil
}

func (fw *forward) setBound(err error, retrying bool) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if err == nil {
		fw.state, fw.err, fw.retrying = StateForwarding, "", false
		return
	}
	fw.state, fw.err, fw.retrying = StateError, err.Error(), retrying
}

func (fw *forward) status() Forward {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	s := Forward{
		Proto:     fw.port.Proto,
		GuestIP:   fw.port.HostIP,
		Port:      fw.port.HostPort,
		Container: fw.port.Container,
		State:     fw.state,
		Error:     fw.err,
		Retrying:  fw.retrying,
	}
	if fw.bind.IsValid() {
		s.HostAddr = fw.bind.String()
	}
	return s
}

// Status lists every port of the last Sync, ordered by port, protocol and address.
func (f *Forwarder) Status() []Forward {
	f.mu.Lock()
	out := make([]Forward, 0, len(f.fwds))
	for _, fw := range f.fwds {
		out = append(out, fw.status())
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b Forward) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.GuestIP, b.GuestIP))
	})
	return out
}

// Close stops every listener, closes every forwarded connection and waits for all of the
// Forwarder's goroutines to exit. Sync fails afterwards.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	for _, fw := range f.fwds {
		f.remove(fw)
	}
	f.fwds = nil
	if f.cancel != nil {
		f.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return nil
}
