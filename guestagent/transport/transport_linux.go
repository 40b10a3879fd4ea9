package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/guestagent/api/mux"
	"github.com/machine-run/machine/guestagent/cmdline"
)

// PortWait bounds how long Open waits for the serial port device to appear.
const PortWait = 10 * time.Second

// Channel is the guest end of the host channel.
type Channel struct {
	log       *slog.Logger
	listeners map[uint32]*listener
	// serve runs the carrier until ctx ends; it feeds the listeners.
	serve func(ctx context.Context) error
	// dialHost opens a stream to a host service (see DialHost).
	dialHost func(ctx context.Context, service uint32) (net.Conn, error)

	mu      sync.Mutex
	session *mux.Server   // the serial session serving now, or nil
	changed chan struct{} // closed and replaced when session changes
}

// Listener returns the listener of service (one of the services passed to Open).
func (c *Channel) Listener(service uint32) net.Listener {
	return c.listeners[service]
}

// Serve carries streams to the listeners until ctx ends.
func (c *Channel) Serve(ctx context.Context) error {
	defer func() {
		for _, l := range c.listeners {
			l.Close()
		}
	}()
	return c.serve(ctx)
}

// Open prepares the channel of kind (bootparams.ChannelSerial or bootparams.ChannelVsock) for services.
// For serial it waits (up to PortWait) for the port device, and when the kernel command line
// carries a token (bootparams.Params.Token) every session must start with that token; for vsock it listens on
// one port per service at once.
func Open(ctx context.Context, kind string, services []uint32, log *slog.Logger) (*Channel, error) {
	switch kind {
	case bootparams.ChannelSerial:
		path, err := WaitSerialPort(ctx, "/dev/virtio-ports", "/sys/class/virtio-ports", api.SerialPortName, PortWait)
		if err != nil {
			return nil, err
		}
		p, err := cmdline.ReadProc()
		if err != nil {
			return nil, err
		}
		token, err := bootToken(p, "/")
		if err != nil {
			// Never serve a channel the contract says is guarded without its guard.
			return nil, err
		}
		log.Info("channel: serial port", "device", path, "token", token != "", "token_from", p.TokenFrom)
		open := func() (io.ReadWriteCloser, error) { return os.OpenFile(path, os.O_RDWR, 0) }
		return serialChannel(open, services, token, log), nil
	case bootparams.ChannelVsock:
		return vsockChannel(services, log)
	}
	return nil, fmt.Errorf("channel %q: unknown kind (want %s or %s)", kind, bootparams.ChannelSerial, bootparams.ChannelVsock)
}

// bootToken is the token every serial session must start with, read where the boot contract
// says (QEMU's fw_cfg in sysfs, under root: "/" in the guest, a fake tree in tests).
func bootToken(p bootparams.Params, root string) (string, error) {
	return bootparams.ReadToken(p, func(path string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, path))
	})
}

func newChannel(services []uint32, log *slog.Logger) *Channel {
	c := &Channel{log: log, listeners: map[uint32]*listener{}, changed: make(chan struct{})}
	for _, s := range services {
		c.listeners[s] = newListener(mux.Addr(s))
	}
	return c
}

// serialChannel serves mux sessions over the device returned by open, one after the other:
// when a session ends (the host hung up, or a peer failed the token check), the device is
// reopened for the next. A non-empty token must be the first line of every session.
//
// While no host is connected a read of the port returns end-of-file at once, so the reopens
// poll, backing off from reopenDelay to maxReopenDelay. A session that was served resets the
// backoff: after a break (a host that slept, a redial) the next carrier is usually already
// waiting, and every reopen that waits out a long backoff delays the recovery.
func serialChannel(open func() (io.ReadWriteCloser, error), services []uint32, token string, log *slog.Logger) *Channel {
	c := newChannel(services, log)
	c.dialHost = c.dialHostSerial
	c.serve = func(ctx context.Context) error {
		var (
			delay time.Duration
			dev   io.ReadWriteCloser // kept across a session that ended on a bad frame
			carry []byte             // what the next session reads first (see handover_linux.go)
		)
		defer func() {
			if dev != nil {
				dev.Close()
			}
		}()
		for ctx.Err() == nil {
			if dev == nil {
				d, err := open()
				if err != nil {
					if delay == 0 {
						log.Warn("channel: open serial port", "err", err)
					}
					delay = nextReopenDelay(delay, false)
					sleepCtx(ctx, delay)
					continue
				}
				dev = d
			}
			served, next, reuse, err := c.serveSession(ctx, dev, token, carry)
			if ctx.Err() != nil {
				break
			}
			carry = next
			if !reuse {
				dev.Close()
				dev = nil
			}
			switch {
			case len(carry) > 0:
				log.Warn("channel: a new host session began inside the last one; serving it", "err", err)
				delay = 0
				continue
			case served || delay == 0:
				log.Warn("channel: session ended, reopening", "err", err, "served", served)
			default:
				// Polling for a host: at most four lines a second would flood the log.
				log.Debug("channel: no session, reopening", "err", err)
			}
			delay = nextReopenDelay(delay, served)
			sleepCtx(ctx, delay)
		}
		return nil
	}
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// The serial port's reopen backoff.
const (
	reopenDelay    = 20 * time.Millisecond
	maxReopenDelay = 250 * time.Millisecond
)

// nextReopenDelay is the wait before the next reopen, after a session that was served or
// not, given the last wait.
func nextReopenDelay(last time.Duration, served bool) time.Duration {
	if served || last <= 0 {
		return reopenDelay
	}
	return min(2*last, maxReopenDelay)
}

// serveSession serves one session on dev, reading carry first; served says it got past the
// preamble and token. When it ends, carry and reuse say how the next one goes on (see
// sessionReader.handover); a failed handshake never reuses the device.
func (c *Channel) serveSession(ctx context.Context, dev io.ReadWriteCloser, token string, carry []byte) (served bool, next []byte, reuse bool, err error) {
	r := &sessionReader{dev: dev, carry: carry}
	// The reads block until a peer writes; closing on ctx's end unblocks them.
	stop := context.AfterFunc(ctx, func() { dev.Close() })
	skipped, err := skipToPreamble(r)
	if err == nil && token != "" {
		err = checkToken(r, token)
	}
	stop()
	if err != nil {
		return false, nil, false, err
	}
	if skipped > 0 {
		c.log.Info("channel: skipped the tail of an earlier host session", "bytes", skipped)
	}
	r.record()
	srv, err := mux.NewServer(sessionConn{sessionReader: r, dev: dev})
	if err != nil {
		return true, nil, false, err
	}
	err = c.serveMux(ctx, srv)
	next, reuse = r.handover()
	return true, next, reuse, err
}

// serveMux serves one mux session behind the channel's listeners until it ends.
func (c *Channel) serveMux(ctx context.Context, srv *mux.Server) error {
	defer srv.Close()
	c.setSession(srv)
	defer c.setSession(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	for service, l := range c.listeners {
		ml, err := srv.Listen(service)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); l.feed(ml, nil) }()
		defer ml.Close()
	}
	return srv.Serve(ctx)
}

func vsockChannel(services []uint32, log *slog.Logger) (*Channel, error) {
	c := newChannel(services, log)
	c.dialHost = func(ctx context.Context, service uint32) (net.Conn, error) {
		conn, err := dialVsock(ctx, api.HostCID, service)
		if err != nil {
			return nil, fmt.Errorf("host channel: vsock dial host port %d: %w", service, err)
		}
		return conn, nil
	}
	var vls []net.Listener
	for _, s := range services {
		vl, err := vsock.Listen(s, nil)
		if err != nil {
			for _, l := range vls {
				l.Close()
			}
			return nil, fmt.Errorf("channel: vsock listen on port %d: %w (is vmw_vsock_virtio_transport loaded?)", s, err)
		}
		vls = append(vls, vl)
	}
	c.serve = func(ctx context.Context) error {
		var wg sync.WaitGroup
		for i, s := range services {
			wg.Add(1)
			go func() { defer wg.Done(); c.listeners[s].feed(vls[i], fromHost(log)) }()
		}
		<-ctx.Done()
		for _, l := range vls {
			l.Close()
		}
		wg.Wait()
		return nil
	}
	return c, nil
}

// fromHost admits only vsock peers with the host's CID.
func fromHost(log *slog.Logger) func(net.Addr) bool {
	return func(a net.Addr) bool {
		va, ok := a.(*vsock.Addr)
		if ok && va.ContextID == api.HostCID {
			return true
		}
		log.Warn("channel: refused a vsock peer that is not the host", "peer", a)
		return false
	}
}

// WaitSerialPort finds the virtio-serial port called name. Without udev there is no
// /dev/virtio-ports symlink, so it also looks the name up in sysfs and uses /dev/<vportNpM>.
func WaitSerialPort(ctx context.Context, linkDir, sysDir, name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	delay := 10 * time.Millisecond
	for {
		if p, ok := findSerialPort(linkDir, sysDir, name); ok {
			return p, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("channel: virtio-serial port %q did not appear within %v (is the VM started with a virtserialport named %s, and virtio_console loaded?)", name, timeout, name)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("channel: waiting for port %q: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func findSerialPort(linkDir, sysDir, name string) (string, bool) {
	if p := filepath.Join(linkDir, name); exists(p) {
		return p, true
	}
	ents, _ := os.ReadDir(sysDir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		dev := filepath.Join(filepath.Dir(linkDir), e.Name())
		if exists(dev) {
			return dev, true
		}
	}
	return "", false
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// listener is a net.Listener fed by the carrier; it survives carrier sessions.
type listener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newListener(addr net.Addr) *listener {
	return &listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// feed hands conns accepted from src to Accept until src fails. allow, when set, vets peers.
func (l *listener) feed(src net.Listener, allow func(net.Addr) bool) {
	for {
		c, err := src.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if allow != nil && !allow(c.RemoteAddr()) {
			c.Close()
			continue
		}
		select {
		case l.conns <- c:
		case <-l.done:
			c.Close()
			return
		}
	}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.addr.Network(), Addr: l.addr, Err: net.ErrClosed}
	}
}

func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *listener) Addr() net.Addr { return l.addr }
