package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Carrier opens the byte stream a session runs over (the host end of the serial port). Each
// call must give a fresh stream; on a channel with a token it presents the token again.
type Carrier func(ctx context.Context) (io.ReadWriteCloser, error)

// LinkState is one change of a Link's health.
type LinkState struct {
	Up bool
	// Err says why the link went down (nil when Up).
	Err error
}

// Default keepalive of a Link: a dead carrier is noticed within Interval+Timeout.
const (
	DefaultKeepAliveInterval = 500 * time.Millisecond
	DefaultKeepAliveTimeout  = 4 * time.Second
)

// ErrLinkDown is wrapped by the errors of a Link that is not serving.
var ErrLinkDown = errors.New("guest channel is down")

// Link is the host end of a channel whose carrier can break while the VM runs. It dials the
// carrier, proves each new session with a ping the guest answers, then pings it every
// KeepAliveInterval; a ping unanswered within KeepAliveTimeout, or the session ending,
// takes the link down and it dials again until its context ends.
//
// yamux's own keepalive is not used: its ping timeout is the connection write timeout,
// which must stay long for slow serial ports, and a ping it sends before the guest agent
// reads the port would kill a healthy session at boot. A Link only starts timing pings once
// the guest has answered one.
type Link struct {
	Dial              Carrier
	KeepAliveInterval time.Duration
	KeepAliveTimeout  time.Duration
	// ProveTimeout bounds the wait for the guest's first answer on a redialled carrier (the
	// guest may have lost this carrier's start and wait for the next); it doubles after each
	// failure up to 8 times. Before the guest has ever answered (boot) there is no bound.
	// Zero means 5 s.
	ProveTimeout time.Duration
	// OnChange, when set, is called (from the Link's goroutine) each time the link goes up
	// or down.
	OnChange func(LinkState)
	// Host, when set, serves the streams the guest opens on every session (host services).
	Host HostHandler

	mu      sync.Mutex
	held    bool   // the VM is paused: keepalives are not sent or judged (see Hold)
	holds   uint64 // counts Hold calls, so a ping that spanned a pause is not judged
	cur     *Client
	carrier io.Closer
	up      chan struct{} // closed while cur is proven; replaced when it goes down
	ended   bool
	lastErr error
}

func (l *Link) init() {
	if l.up == nil {
		l.up = make(chan struct{})
	}
}

// Run keeps the link until ctx ends; then it closes the session. It returns ctx's error.
func (l *Link) Run(ctx context.Context) error {
	l.mu.Lock()
	l.init()
	l.mu.Unlock()
	defer l.end()
	var delay time.Duration
	everUp, unproven := false, 0
	for ctx.Err() == nil {
		var bound time.Duration
		if everUp {
			bound = l.proveTimeout() << min(unproven, 3)
		}
		began := time.Now()
		proven, err := l.session(ctx, bound)
		everUp = everUp || proven
		if proven {
			unproven = 0
		} else {
			unproven++
		}
		if ctx.Err() != nil {
			break
		}
		delay = redialDelay(delay, proven, time.Since(began))
		l.mu.Lock()
		l.lastErr = err
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	return ctx.Err()
}

// redialDelay is the wait before the next carrier, given the last wait and how the last
// attempt went. The backoff is for carriers that fail at once; after a session, or an
// attempt that waited out its bound (QEMU frozen, a host asleep), the link dials again at
// once so it is back the moment the guest can answer.
func redialDelay(last time.Duration, proven bool, took time.Duration) time.Duration {
	if proven || took > time.Second || last <= 0 {
		return 50 * time.Millisecond
	}
	return min(2*last, time.Second)
}

func (l *Link) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
	if l.cur != nil {
		l.cur.Close()
	}
	if l.carrier != nil {
		l.carrier.Close()
	}
}

// session dials one carrier and serves it until it dies; proven says the guest answered.
func (l *Link) session(ctx context.Context, proveBound time.Duration) (proven bool, err error) {
	conn, err := l.Dial(ctx)
	if err != nil {
		return false, err
	}
	heard := &heardConn{ReadWriteCloser: conn}
	c, err := NewClient(heard)
	if err != nil {
		conn.Close()
		return false, err
	}
	l.mu.Lock()
	l.cur, l.carrier = c, conn
	l.mu.Unlock()
	if l.Host != nil {
		go c.ServeHost(l.Host)
	}
	defer func() {
		l.mu.Lock()
		l.cur, l.carrier = nil, nil
		l.mu.Unlock()
		c.Close()
		conn.Close()
	}()
	if err := l.prove(ctx, c, proveBound); err != nil {
		return false, err
	}
	l.mu.Lock()
	close(l.up)
	l.mu.Unlock()
	l.report(LinkState{Up: true})
	err = l.watch(ctx, c, heard)
	l.mu.Lock()
	l.up = make(chan struct{})
	l.mu.Unlock()
	c.Close()
	if ctx.Err() == nil {
		l.report(LinkState{Err: err})
	}
	return true, err
}

// prove waits for the guest to answer a ping on a new session, for at most bound (0: no
// bound, the guest agent may not run yet). Pings are resent every keepalive timeout in case
// one was lost while the guest reopened its port.
func (l *Link) prove(ctx context.Context, c *Client, bound time.Duration) error {
	var expired <-chan time.Time
	if bound > 0 {
		t := time.NewTimer(bound)
		defer t.Stop()
		expired = t.C
	}
	answered := make(chan struct{}, 1)
	send := func() {
		go func() {
			if _, err := c.sess.Ping(); err == nil {
				select {
				case answered <- struct{}{}:
				default:
				}
			}
		}()
	}
	send()
	t := time.NewTicker(l.timeout())
	defer t.Stop()
	for {
		select {
		case <-answered:
			return nil
		case <-c.Done():
			return fmt.Errorf("%w: the carrier closed before the guest answered", ErrLinkDown)
		case <-ctx.Done():
			return ctx.Err()
		case <-expired:
			return fmt.Errorf("%w: the guest did not answer on a new carrier within %v", ErrLinkDown, bound)
		case <-t.C:
			send()
		}
	}
}

func (l *Link) proveTimeout() time.Duration {
	if l.ProveTimeout > 0 {
		return l.ProveTimeout
	}
	return 5 * time.Second
}

// watch pings the proven session until a ping goes unanswered or the session ends.
func (l *Link) watch(ctx context.Context, c *Client, heard *heardConn) error {
	t := time.NewTicker(l.interval())
	defer t.Stop()
	for {
		select {
		case <-c.Done():
			return fmt.Errorf("%w: the carrier closed", ErrLinkDown)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if held, _ := l.holdState(); held {
			continue
		}
		if err := l.ping(c, heard, l.timeout()); err != nil {
			return err
		}
	}
}

// Hold stops the keepalive while the VM is paused (a paused guest cannot answer); Release
// starts it again. A ping sent before the pause is given a fresh timeout after it.
func (l *Link) Hold() {
	l.mu.Lock()
	l.held = true
	l.holds++
	l.mu.Unlock()
}

// Release ends a Hold.
func (l *Link) Release() {
	l.mu.Lock()
	l.held = false
	l.mu.Unlock()
}

func (l *Link) holdState() (held bool, holds uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.holds
}

// ping sends one ping and waits up to timeout for the answer. A late answer is forgiven
// while the guest's bytes keep arriving: its pong waits behind the frames it is sending (a
// burst of stream opens, a bulk copy, a slow serial port under emulation), so the guest is
// busy, not gone. Only a carrier silent for the whole timeout takes the link down. A wait
// that a Hold (a paused VM) overlapped starts again.
func (l *Link) ping(c *Client, heard *heardConn, timeout time.Duration) error {
	res := make(chan error, 1)
	go func() { _, err := c.sess.Ping(); res <- err }()
	_, holds := l.holdState()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case err := <-res:
			if err != nil {
				return fmt.Errorf("%w: keepalive: %v", ErrLinkDown, err)
			}
			return nil
		case <-c.Done():
			return fmt.Errorf("%w: the carrier closed", ErrLinkDown)
		case <-t.C:
		}
		if held, now := l.holdState(); held || now != holds {
			holds = now
			t.Reset(timeout)
			continue
		}
		silent := heard.silentFor()
		if silent >= timeout {
			return fmt.Errorf("%w: the guest did not answer a keepalive within %v (nothing heard for %v)", ErrLinkDown, timeout, silent.Round(time.Millisecond))
		}
		t.Reset(timeout - silent)
	}
}

// heardConn records when the guest last sent anything.
type heardConn struct {
	io.ReadWriteCloser
	last atomic.Int64 // UnixNano of the last read that returned bytes
}

func (h *heardConn) Read(p []byte) (int, error) {
	n, err := h.ReadWriteCloser.Read(p)
	if n > 0 {
		h.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// silentFor is how long the carrier has delivered nothing (since it was opened, if never).
func (h *heardConn) silentFor() time.Duration {
	last := h.last.Load()
	if last == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(time.Unix(0, last))
}

func (l *Link) report(s LinkState) {
	if l.OnChange != nil {
		l.OnChange(s)
	}
}

func (l *Link) interval() time.Duration {
	if l.KeepAliveInterval > 0 {
		return l.KeepAliveInterval
	}
	return DefaultKeepAliveInterval
}

func (l *Link) timeout() time.Duration {
	if l.KeepAliveTimeout > 0 {
		return l.KeepAliveTimeout
	}
	return DefaultKeepAliveTimeout
}

// DialGuest opens a stream on the current session. While the link is down it waits for the
// next session (or ctx's end), so a connection made during a break succeeds once the
// channel is back.
func (l *Link) DialGuest(ctx context.Context, service uint32) (net.Conn, error) {
	for {
		l.mu.Lock()
		l.init()
		up, c, ended, last := l.up, l.cur, l.ended, l.lastErr
		l.mu.Unlock()
		if ended {
			return nil, fmt.Errorf("guest channel: dial service %d: %w: the VM is not running", service, ErrLinkDown)
		}
		select {
		case <-up:
		case <-ctx.Done():
			if last != nil {
				return nil, fmt.Errorf("guest channel: dial service %d: %w (channel: %v)", service, ctx.Err(), last)
			}
			return nil, fmt.Errorf("guest channel: dial service %d: %w", service, ctx.Err())
		}
		if c == nil {
			continue
		}
		conn, err := c.DialGuest(ctx, service)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrNoService) {
			return conn, err
		}
		if !errors.Is(err, yamux.ErrSessionShutdown) && !errors.Is(err, yamux.ErrStreamsExhausted) && !errors.Is(err, yamux.ErrRemoteGoAway) {
			return nil, err
		}
		// The session died under this dial; a GoAway from a stale guest session means the
		// same. Wait for the next one.
		if errors.Is(err, yamux.ErrRemoteGoAway) {
			c.Close()
		}
		select {
		case <-c.Done():
		case <-ctx.Done():
			return nil, fmt.Errorf("guest channel: dial service %d: %w", service, ctx.Err())
		}
	}
}

// Cut closes the current carrier as a failing cable would, so fault tests can break the
// channel from the host; the link notices and redials as after any other break.
func (l *Link) Cut() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.carrier == nil {
		return fmt.Errorf("guest channel: %w: nothing to cut", ErrLinkDown)
	}
	return l.carrier.Close()
}
