package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// ErrNoLease is returned (wrapped) by Start when no server granted a lease in time.
var ErrNoLease = errors.New("no DHCP lease")

// Defaults for the zero fields of Client.
const (
	DefaultGiveUp     = 30 * time.Second
	DefaultTimeout    = 2 * time.Second
	DefaultMaxBackoff = 8 * time.Second
	firstBackoff      = 250 * time.Millisecond
)

// Client keeps a DHCPv4 lease on one interface. Set its fields, call Start once, and Close
// when done (the guest agent never is: the lease lives as long as the VM).
type Client struct {
	// Iface is the interface: nclient4 sends and receives on a raw packet socket bound to it,
	// so it needs no address yet.
	Iface string
	// Conn, HWAddr and Server replace the raw socket (tests): messages for Server go out on
	// Conn, with HWAddr as the client hardware address.
	Conn   net.PacketConn
	HWAddr net.HardwareAddr
	Server *net.UDPAddr
	// Hostname is sent as option 12, so the host's server can name the lease.
	Hostname string
	// Apply configures the interface for next, replacing prev (the zero Lease the first
	// time). It is called only when the address, router or name servers change.
	Apply func(ctx context.Context, prev, next Lease) error
	Log   *slog.Logger
	// GiveUp bounds Start's first acquisition; Timeout bounds the wait for each reply;
	// MaxBackoff caps the pause between attempts. Zero means the Default constants.
	GiveUp, Timeout, MaxBackoff time.Duration

	nc      *nclient4.Client
	raw     *nclient4.Lease // the lease held; nil when there is none
	mu      sync.Mutex
	applied Lease // what Apply last configured
	stop    context.CancelFunc
	done    chan struct{}
}

// Start acquires a lease, retrying with backoff for at most GiveUp, and applies it. It
// then keeps the lease in a goroutine until ctx ends or Close: renewal at T1, and a new
// DISCOVER after a NAK or expiry. When the first acquisition fails, Start returns an error
// wrapping ErrNoLease and the goroutine keeps trying.
func (c *Client) Start(ctx context.Context) (Lease, error) {
	if err := c.open(); err != nil {
		return Lease{}, err
	}
	actx, cancel := context.WithTimeout(ctx, or(c.GiveUp, DefaultGiveUp))
	l, err := c.acquire(actx)
	cancel()
	mctx, stop := context.WithCancel(ctx)
	c.stop, c.done = stop, make(chan struct{})
	go func() {
		defer close(c.done)
		c.maintain(mctx)
	}()
	if err != nil {
		return Lease{}, fmt.Errorf("dhcp on %s: %w within %v (still trying): %w", c.name(), ErrNoLease, or(c.GiveUp, DefaultGiveUp), err)
	}
	return l, nil
}

// Lease returns the lease last applied to the interface (the zero Lease before the first).
func (c *Client) Lease() Lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// Close stops keeping the lease and closes the socket. The address stays configured.
func (c *Client) Close() error {
	if c.stop != nil {
		c.stop()
		<-c.done
	}
	if c.nc == nil {
		return nil
	}
	return c.nc.Close()
}

func (c *Client) open() error {
	opts := []nclient4.ClientOpt{
		nclient4.WithTimeout(or(c.Timeout, DefaultTimeout)),
		nclient4.WithRetry(1), // retries are ours, with backoff and a restart after NAK
	}
	var err error
	if c.Conn != nil {
		if c.Server != nil {
			opts = append(opts, nclient4.WithServerAddr(c.Server))
		}
		c.nc, err = nclient4.NewWithConn(c.Conn, c.HWAddr, opts...)
	} else {
		c.nc, err = nclient4.New(c.Iface, opts...)
	}
	if err != nil {
		return fmt.Errorf("dhcp on %s: %w", c.name(), err)
	}
	return nil
}

// acquire runs DISCOVER/OFFER/REQUEST/ACK until a lease is applied or ctx ends, pausing
// with exponential backoff after timeouts and errors. A NAK starts over at once.
func (c *Client) acquire(ctx context.Context) (Lease, error) {
	var last error
	backoff := firstBackoff
	for {
		raw, err := c.nc.Request(ctx, requestModifiers(c.Hostname)...)
		if err == nil {
			var l Lease
			if l, err = c.take(ctx, raw); err == nil {
				c.log().Info("dhcp: lease acquired", "iface", c.name(), "lease", l.String())
				return l, nil
			}
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return Lease{}, last
		}
		last = err
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			// Start over at once, but never spin against a server that refuses everything.
			c.log().Warn("dhcp: request refused, starting over", "iface", c.name(), "err", err)
			if !sleep(ctx, firstBackoff) {
				return Lease{}, last
			}
			continue
		}
		c.log().Debug("dhcp: no lease yet", "iface", c.name(), "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return Lease{}, last
		}
		backoff = min(2*backoff, or(c.MaxBackoff, DefaultMaxBackoff))
	}
}

// take applies the lease in raw's ACK and makes it the one held.
func (c *Client) take(ctx context.Context, raw *nclient4.Lease) (Lease, error) {
	l, err := FromACK(raw.ACK, raw.CreationTime)
	if err != nil {
		return Lease{}, err
	}
	c.mu.Lock()
	prev := c.applied
	c.mu.Unlock()
	if c.Apply != nil && !prev.SameConfig(l) {
		if err := c.Apply(ctx, prev, l); err != nil {
			return Lease{}, fmt.Errorf("dhcp on %s: configure %v: %w", c.name(), l.Addr, err)
		}
	}
	c.mu.Lock()
	c.applied = l
	c.mu.Unlock()
	c.raw = raw
	return l, nil
}

func (c *Client) maintain(ctx context.Context) {
	for ctx.Err() == nil {
		if c.raw == nil {
			if _, err := c.acquire(ctx); err != nil {
				return // only ctx ends an unbounded acquire
			}
			continue
		}
		l := c.Lease()
		at := l.RenewAt()
		if at.IsZero() {
			<-ctx.Done()
			return
		}
		if !sleep(ctx, time.Until(at)) {
			return
		}
		c.renew(ctx, l)
	}
}

// renew asks for an extension of l until it is granted, refused or l expires; after a
// refusal or expiry no lease is held, so maintain starts over with a DISCOVER. The address
// stays configured until a new lease replaces it: the alternative, no network at all,
// helps nobody in a VM whose only server is the host.
func (c *Client) renew(ctx context.Context, l Lease) {
	backoff := firstBackoff
	for {
		rctx, cancel := context.WithDeadline(ctx, l.ExpiresAt())
		raw, err := c.nc.Renew(rctx, c.raw, requestModifiers(c.Hostname)...)
		cancel()
		if err == nil {
			var nl Lease
			if nl, err = c.take(ctx, raw); err == nil {
				c.log().Debug("dhcp: lease renewed", "iface", c.name(), "lease", nl.String())
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			c.log().Warn("dhcp: renewal refused, starting over", "iface", c.name(), "err", err)
			c.raw = nil
			return
		}
		left := time.Until(l.ExpiresAt())
		if left <= 0 {
			c.log().Warn("dhcp: lease expired without renewal, starting over", "iface", c.name(), "err", err)
			c.raw = nil
			return
		}
		c.log().Debug("dhcp: renewal failed", "iface", c.name(), "err", err, "retry_in", backoff)
		if !sleep(ctx, min(backoff, left)) {
			return
		}
		backoff = min(2*backoff, or(c.MaxBackoff, DefaultMaxBackoff))
	}
}

func (c *Client) name() string {
	if c.Iface == "" {
		return "test conn"
	}
	return c.Iface
}

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func or(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
