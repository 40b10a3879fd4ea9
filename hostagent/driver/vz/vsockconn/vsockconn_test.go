//go:build unix

package vsockconn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// vzConn mimics vz v3.7.1's VirtioSocketConnection: a net.Conn over a unix socket that keeps
// the socket in an unexported rawConn field and offers no CloseWrite.
type vzConn struct {
	rawConn         net.Conn
	destinationPort uint32
}

func (v *vzConn) Read(b []byte) (int, error)         { return v.rawConn.Read(b) }
func (v *vzConn) Write(b []byte) (int, error)        { return v.rawConn.Write(b) }
func (v *vzConn) Close() error                       { return v.rawConn.Close() }
func (v *vzConn) LocalAddr() net.Addr                { return v.rawConn.LocalAddr() }
func (v *vzConn) RemoteAddr() net.Addr               { return v.rawConn.RemoteAddr() }
func (v *vzConn) SetDeadline(t time.Time) error      { return v.rawConn.SetDeadline(t) }
func (v *vzConn) SetReadDeadline(t time.Time) error  { return v.rawConn.SetReadDeadline(t) }
func (v *vzConn) SetWriteDeadline(t time.Time) error { return v.rawConn.SetWriteDeadline(t) }

// socketPair returns both ends of a unix stream socketpair, each built the way vz builds a
// connection: os.NewFile + net.FileConn on the descriptor.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "vsock")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatalf("FileConn: %v", err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

func wrappedPair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, b := socketPair(t)
	wa, err := Wrap(&vzConn{rawConn: a})
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	wb, err := Wrap(&vzConn{rawConn: b})
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	return wa, wb
}

func TestConn(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		a, b := wrappedPair(t)
		return a, b, func() { a.Close(); b.Close() }, nil
	})
}

func TestCloseWriteHalfCloses(t *testing.T) {
	host, guest := wrappedPair(t)
	defer host.Close()
	defer guest.Close()

	if _, err := host.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := host.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	guest.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(guest)
	if err != nil {
		t.Fatalf("guest read: %v", err)
	}
	if string(got) != "request" {
		t.Fatalf("guest read %q, want %q then EOF", got, "request")
	}
	// The other direction still flows after the host's half-close.
	if _, err := guest.Write([]byte("reply")); err != nil {
		t.Fatalf("guest write after host CloseWrite: %v", err)
	}
	guest.Close()
	host.SetDeadline(time.Now().Add(5 * time.Second))
	got, err = io.ReadAll(host)
	if err != nil || string(got) != "reply" {
		t.Fatalf("host read %q, %v; want %q", got, err, "reply")
	}
	// Writing after CloseWrite must fail rather than vanish.
	if _, err := host.Write([]byte("x")); err == nil {
		t.Fatal("write after CloseWrite succeeded")
	}
}

func TestWrapSyscallConn(t *testing.T) {
	a, b := socketPair(t)
	defer b.Close()
	w, err := Wrap(a)
	if err != nil {
		t.Fatalf("Wrap(%T): %v", a, err)
	}
	defer w.Close()
	if err := w.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer read = %d, %v; want EOF", n, err)
	}
}

func TestWrapWithoutDescriptor(t *testing.T) {
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	for name, c := range map[string]net.Conn{
		"pipe":              p1,                   // no descriptor at all
		"rawConn is a pipe": &vzConn{rawConn: p1}, // inner conn has no descriptor
		"nil rawConn":       &vzConn{},
		"no rawConn field":  struct{ net.Conn }{p1},
		"pointer, no field": &struct{ net.Conn }{p1},
	} {
		if _, err := Wrap(c); !errors.Is(err, ErrNoDescriptor) {
			t.Errorf("%s: Wrap error = %v, want ErrNoDescriptor", name, err)
		}
	}
}

func TestCloseWriteAfterClose(t *testing.T) {
	a, b := wrappedPair(t)
	defer b.Close()
	a.Close()
	err := a.CloseWrite()
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Fatalf("CloseWrite after Close = %v, want *net.OpError", err)
	}
}
