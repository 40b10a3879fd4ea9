// Package vsockconn gives a stream socket that hides its descriptor a working CloseWrite.
//
// Virtualization.framework hands the host each vsock stream as a unix socket descriptor, and
// Code-Hex/vz v3.7.1 wraps it in a VirtioSocketConnection that exposes neither CloseWrite nor
// the descriptor. Half-close is part of the host<->guest contract (docker run -i, attach,
// build contexts), so Wrap finds the socket behind such a connection and CloseWrite shuts
// down its write half with shutdown(2). The package is portable so it is tested on Linux
// against unix socket pairs; only the vz driver uses it.
package vsockconn

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"syscall"
	"unsafe"
)

// ErrNoDescriptor is returned by Wrap when the connection exposes no socket descriptor.
var ErrNoDescriptor = errors.New("connection exposes no socket descriptor")

// Conn is a net.Conn whose CloseWrite shuts down the write half of the underlying socket.
type Conn struct {
	net.Conn
	raw syscall.RawConn
}

// New wraps c, whose bytes travel over the socket that raw controls.
func New(c net.Conn, raw syscall.RawConn) *Conn {
	return &Conn{Conn: c, raw: raw}
}

// Wrap returns c with a CloseWrite. It uses c's own descriptor when c is a syscall.Conn;
// otherwise it looks for the net.Conn c wraps in an unexported field named rawConn (the
// layout of vz v3.7.1's VirtioSocketConnection) and uses that connection's descriptor.
func Wrap(c net.Conn) (*Conn, error) {
	if sc, ok := c.(syscall.Conn); ok {
		raw, err := sc.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("vsock connection: %w", err)
		}
		return New(c, raw), nil
	}
	inner, err := innerConn(c)
	if err != nil {
		return nil, err
	}
	sc, ok := inner.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("vsock connection: inner %T: %w", inner, ErrNoDescriptor)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("vsock connection: %w", err)
	}
	return New(c, raw), nil
}

// innerConn reads the unexported rawConn field of *struct{ rawConn net.Conn; ... }.
func innerConn(c net.Conn) (net.Conn, error) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("vsock connection %T: %w", c, ErrNoDescriptor)
	}
	f := v.Elem().FieldByName("rawConn")
	connType := reflect.TypeFor[net.Conn]()
	if !f.IsValid() || f.Type() != connType {
		return nil, fmt.Errorf("vsock connection %T has no rawConn net.Conn field (vz version changed?): %w",
			c, ErrNoDescriptor)
	}
	// The field is unexported, so reflect refuses Interface(); read it through its address.
	inner := reflect.NewAt(connType, unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
	if inner == nil {
		return nil, fmt.Errorf("vsock connection %T: nil rawConn: %w", c, ErrNoDescriptor)
	}
	return inner.(net.Conn), nil
}

// CloseWrite shuts down the sending side: the peer reads EOF, and can still write back.
func (c *Conn) CloseWrite() error {
	var serr error
	if err := c.raw.Control(func(fd uintptr) { serr = shutdownWrite(fd) }); err != nil {
		return c.opError(err)
	}
	if serr != nil {
		return c.opError(serr)
	}
	return nil
}

func (c *Conn) opError(err error) error {
	return &net.OpError{Op: "close", Net: "vsock", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
