// Package mux carries many host<->guest streams over one byte stream (a virtio-serial port)
// when the hypervisor has no vsock. It uses hashicorp/yamux; each stream opens with a 4-byte
// big-endian service number, and the guest answers one status byte before any data flows, so
// dialing a service the guest does not serve fails at once instead of yielding a dead stream.
//
// Both sides live here because the framing is part of the wire contract: the host uses
// Client.DialGuest, the guest uses Server.Listen and Server.Serve.
package mux

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Status bytes the guest writes after reading a stream's service header.
const (
	statusOK        byte = 0
	statusNoService byte = 1
)

// Preamble starts every carrier the host opens on a serial port, before the token (if any)
// and the session. A guest session that missed the host's hang-up reads it as a frame with a
// bad version and ends; the guest's next session skips whatever precedes the preamble (the
// tail of the old host session) and starts exactly where the new one does.
const Preamble = "MACHINE-SESSION-1\n"

// ErrNoService is returned by DialGuest when the guest does not serve the service.
var ErrNoService = errors.New("guest does not serve this service")

func config(guest bool) *yamux.Config {
	c := yamux.DefaultConfig()
	// The host's serial port is only read once the guest agent runs, so yamux's keepalive
	// (whose ping timeout is the long write timeout) would tear a healthy session down at
	// boot: the host watches its sessions with a Link instead. The guest keeps yamux's as a
	// backstop, so a session whose host vanished without an EOF (a reconnect racing the port's
	// close notification) is dropped and the port reopened for the next host.
	c.EnableKeepAlive = guest
	c.KeepAliveInterval = 5 * time.Second
	c.LogOutput = io.Discard
	// Never reset a stream that is closed on one side only: yamux's timer runs from the
	// half-close, so it cut a `docker run` or `docker exec` whose client had closed stdin
	// (the CLI always does without -i) 30 s after it started, output and all. A full Close
	// bounds its own wait for the peer instead (closeLinger).
	c.StreamCloseTimeout = 0
	c.ConnectionWriteTimeout = 30 * time.Second
	return c
}

// Client is the host end of the channel.
type Client struct {
	sess *yamux.Session
}

// NewClient starts the host end over conn (the host side of the serial port).
func NewClient(conn io.ReadWriteCloser) (*Client, error) {
	s, err := yamux.Client(&frameWriter{ReadWriteCloser: conn}, config(false))
	if err != nil {
		return nil, fmt.Errorf("guest channel: %w", err)
	}
	return &Client{sess: s}, nil
}

// DialGuest opens a stream to service in the guest. It blocks until the guest agent accepts
// the stream or ctx ends; before the agent runs, the request waits in the serial port.
func (c *Client) DialGuest(ctx context.Context, service uint32) (net.Conn, error) {
	st, err := c.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("guest channel: open stream for service %d: %w", service, err)
	}
	conn := &Conn{Stream: st}
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], service)
	if _, err := st.Write(hdr[:]); err != nil {
		conn.Close()
		return nil, dialErr(ctx, service, err)
	}
	var status [1]byte
	if _, err := io.ReadFull(st, status[:]); err != nil {
		conn.Close()
		return nil, dialErr(ctx, service, err)
	}
	if !stop() {
		conn.Close()
		return nil, dialErr(ctx, service, ctx.Err())
	}
	if status[0] != statusOK {
		conn.Close()
		return nil, fmt.Errorf("guest channel: service %d: %w", service, ErrNoService)
	}
	return conn, nil
}

func dialErr(ctx context.Context, service uint32, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("guest channel: dial service %d: %w", service, err)
}

// Done is closed when the session ends (the serial port closed or failed).
func (c *Client) Done() <-chan struct{} { return c.sess.CloseChan() }

// Close ends the session and every stream on it.
func (c *Client) Close() error { return c.sess.Close() }

// Server is the guest end of the channel.
type Server struct {
	sess *yamux.Session

	mu        sync.Mutex
	listeners map[uint32]*listener
}

// NewServer starts the guest end over conn (the opened /dev/virtio-ports device).
func NewServer(conn io.ReadWriteCloser) (*Server, error) {
	s, err := yamux.Server(&frameWriter{ReadWriteCloser: conn}, config(true))
	if err != nil {
		return nil, fmt.Errorf("guest channel: %w", err)
	}
	return &Server{sess: s, listeners: map[uint32]*listener{}}, nil
}

// Listen returns a listener for streams the host opens to service. Call it before Serve
// accepts streams for that service, or they are refused with ErrNoService.
func (s *Server) Listen(service uint32) (net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.listeners[service]; ok {
		return nil, fmt.Errorf("guest channel: service %d already has a listener", service)
	}
	l := &listener{srv: s, service: service, conns: make(chan net.Conn), done: make(chan struct{})}
	s.listeners[service] = l
	return l, nil
}

// Serve accepts streams until the session ends or ctx is done, and hands each to the listener
// of the service its header names.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.sess.Close() })
	defer stop()
	for {
		st, err := s.sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("guest channel: %w", err)
		}
		go s.route(ctx, &Conn{Stream: st})
	}
}

func (s *Server) route(ctx context.Context, c *Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	service := binary.BigEndian.Uint32(hdr[:])
	s.mu.Lock()
	l := s.listeners[service]
	s.mu.Unlock()
	if l == nil {
		c.Write([]byte{statusNoService})
		c.Close()
		return
	}
	if _, err := c.Write([]byte{statusOK}); err != nil {
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	case <-ctx.Done():
		c.Close()
	}
}

// Close ends the session.
func (s *Server) Close() error { return s.sess.Close() }

type listener struct {
	srv     *Server
	service uint32
	conns   chan net.Conn
	once    sync.Once
	done    chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "mux", Addr: l.Addr(), Err: net.ErrClosed}
	case <-l.srv.sess.CloseChan():
		return nil, &net.OpError{Op: "accept", Net: "mux", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.srv.mu.Lock()
		delete(l.srv.listeners, l.service)
		l.srv.mu.Unlock()
	})
	return nil
}

func (l *listener) Addr() net.Addr { return Addr(l.service) }

// Addr is the address of a service on the channel.
type Addr uint32

func (a Addr) Network() string { return "mux" }
func (a Addr) String() string  { return fmt.Sprintf("service:%d", uint32(a)) }

// Conn is one stream. yamux's Close only half-closes (it sends FIN and keeps reading), so Conn
// maps that to CloseWrite and makes Close a full close: later reads and writes fail with
// net.ErrClosed as on any other net.Conn.
type Conn struct {
	*yamux.Stream

	mu            sync.Mutex
	closed        bool
	reads         sync.WaitGroup // Reads inside Stream.Read
	readDeadline  time.Time
	writeDeadline time.Time
}

// yamux only checks deadlines while an operation blocks; net.Conn requires an expired
// deadline to fail the next call at once, so Conn checks them first.

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Stream.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.Stream.SetWriteDeadline(t)
}

// check fails an operation on a closed conn or past its deadline.
// c.mu must be held.
func (c *Conn) check(op string, deadline time.Time) error {
	if c.closed {
		return c.opErr(op, net.ErrClosed)
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return c.opErr(op, timeoutError{})
	}
	return nil
}

// CloseWrite sends EOF to the peer; reading goes on until the peer closes its side.
func (c *Conn) CloseWrite() error {
	if c.isClosed() {
		return c.opErr("close", net.ErrClosed)
	}
	return c.Stream.Close()
}

// Close closes both directions.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opErr("close", net.ErrClosed)
	}
	c.closed = true
	c.mu.Unlock()
	// Unblock pending reads and writes now.
	c.Stream.SetDeadline(time.Unix(1, 0))
	err := c.Stream.Close()
	if errors.Is(err, yamux.ErrSessionShutdown) {
		err = nil
	}
	go c.drain()
	return err
}

// closeLinger bounds how long a fully closed Conn keeps reading (and discarding) what the
// peer still sends, until the peer closes its side too. Reading keeps the stream's window
// open, so a peer copying from a server that has not yet seen the end does not block in a
// write; after closeLinger a peer that never ends is left to its own timeouts.
var closeLinger atomic.Int64 // nanoseconds; 30 s (init)

func init() { closeLinger.Store(int64(30 * time.Second)) }

// drain discards what the peer sends after Close, once every Read that was in progress has
// returned (their deadline has passed), until EOF or closeLinger.
func (c *Conn) drain() {
	c.reads.Wait()
	c.Stream.SetReadDeadline(time.Now().Add(time.Duration(closeLinger.Load())))
	io.Copy(io.Discard, c.Stream)
}

func (c *Conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if err := c.check("read", c.readDeadline); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.reads.Add(1)
	c.mu.Unlock()
	n, err := c.Stream.Read(b)
	c.reads.Done()
	if c.isClosed() {
		// Closed while reading: what arrived belongs to the drain, not to a closed Conn.
		return 0, c.opErr("read", net.ErrClosed)
	}
	return n, c.mapErr("read", err)
}

func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	err := c.check("write", c.writeDeadline)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Stream.Write(b)
	return n, c.mapErr("write", err)
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Conn) mapErr(op string, err error) error {
	switch {
	case err == nil || err == io.EOF:
		return err
	case c.isClosed():
		return c.opErr(op, net.ErrClosed)
	case errors.Is(err, yamux.ErrTimeout):
		return c.opErr(op, timeoutError{})
	}
	return c.opErr(op, err)
}

func (c *Conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "mux", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// timeoutError satisfies net.Error so callers (and nettest) recognise deadline expiry, and
// unwraps to os.ErrDeadlineExceeded.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }
