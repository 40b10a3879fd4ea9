//go:build !windows

package netstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// link returns the host end's stack and a peer stack standing in for the guest, on the two
// ends of one Pair.
func link(t *testing.T) (host, guest *Stack) {
	t.Helper()
	h, v, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	g, err := net.FileConn(v)
	v.Close()
	if err != nil {
		t.Fatal(err)
	}
	host, err = New(h, HostEnd(nil))
	if err != nil {
		t.Fatal(err)
	}
	guest, err = New(g, GuestEnd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(); guest.Close() })
	return host, guest
}

// listen serves port on the guest stack with an echo.
func listen(t *testing.T, guest *Stack, port uint16) {
	t.Helper()
	l, err := guest.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

func TestDialCarriesBulkData(t *testing.T) {
	host, guest := link(t)
	listen(t, guest, 9000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := host.Dial(ctx, 9000)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	want := make([]byte, 8<<20)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() { _, err := c.Write(want); errc <- err }()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the echo differs from what was sent")
	}
}

func TestDialRefusedPortFailsAtOnce(t *testing.T) {
	host, _ := link(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	c, err := host.Dial(ctx, 9001)
	if err == nil {
		c.Close()
		t.Fatal("dial of a port nobody serves succeeded")
	}
	if errors.Is(err, ErrNoPeer) || ctx.Err() != nil || time.Since(began) > 5*time.Second {
		t.Fatalf("dial of a refused port took %v (err %v): want the peer's reset, not a timeout", time.Since(began), err)
	}
}

// A guest that never configured its end (an image older than the host) leaves ARP
// unanswered: Dial says so, for the caller to take another path, within seconds.
func TestDialWithNobodyOnTheLink(t *testing.T) {
	h, v, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close() // open but unread: frames go nowhere, as into an unconfigured NIC
	host, err := New(h, HostEnd(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	c, err := host.Dial(ctx, 9000)
	if err == nil {
		c.Close()
		t.Fatal("dial with nobody on the link succeeded")
	}
	if !errors.Is(err, ErrNoPeer) {
		t.Fatalf("dial with nobody on the link: %v (after %v), want ErrNoPeer", err, time.Since(began))
	}
	t.Logf("gave up after %v: %v", time.Since(began).Round(time.Millisecond), err)
}

func TestCloseEndsConnectionsAndDials(t *testing.T) {
	host, guest := link(t)
	listen(t, guest, 9000)
	ctx := context.Background()
	c, err := host.Dial(ctx, 9000)
	if err != nil {
		t.Fatal(err)
	}
	host.Close()
	select {
	case <-host.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Close")
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read on a closed stack: %v, want the connection ended", err)
	}
	if _, err := host.Dial(ctx, 9000); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("dial after Close: %v, want net.ErrClosed", err)
	}
}

func TestStackStopsWhenTheLinkCloses(t *testing.T) {
	host, guest := link(t)
	guest.Close() // closes the guest's end of the socket pair
	// A datagram socket pair does not report its peer's close to a reader; a write does.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host.Dial(ctx, 9000)
	select {
	case <-host.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the host stack kept running on a link whose other end is gone")
	}
}

// pair returns the two ends of a new Pair, closed when the test ends.
func pair(t *testing.T) (host net.Conn, vm *os.File) {
	t.Helper()
	h, v, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); v.Close() })
	return h, v
}

func TestNewRefusesBadConfig(t *testing.T) {
	h, _ := pair(t)
	good := HostEnd(nil)
	for name, mutate := range map[string]func(*Config){
		"IPv6 address": func(c *Config) { c.Addr = netip.MustParsePrefix("fd00::1/64") },
		"no MAC":       func(c *Config) { c.MAC = nil },
		"tiny MTU":     func(c *Config) { c.MTU = 100 },
	} {
		c := good
		mutate(&c)
		if _, err := New(h, c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
}

// TestPairBuffers: each end of a link can queue several full frames, and its receive buffer
// is at least twice its send buffer, as Apple's file-handle attachment expects of the socket.
func TestPairBuffers(t *testing.T) {
	h, vm := pair(t)
	host, err := h.(*net.UnixConn).File() // a duplicate descriptor of the same socket
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	frame := int(HostEnd(nil).MTU) + 14
	for name, end := range map[string]*os.File{"host end": host, "VM end": vm} {
		snd, serr := syscall.GetsockoptInt(int(end.Fd()), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		rcv, rerr := syscall.GetsockoptInt(int(end.Fd()), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		if serr != nil || rerr != nil {
			t.Fatalf("%s: getsockopt: %v, %v", name, serr, rerr)
		}
		if rcv < linkReceiveBuffer {
			t.Skipf("%s: the host caps the receive buffer at %d bytes (asked for %d)", name, rcv, linkReceiveBuffer)
		}
		if snd < 4*frame || rcv < 2*snd {
			t.Errorf("%s: send buffer %d, receive buffer %d; want room for 4 frames of %d and a receive buffer at least twice the send buffer", name, snd, rcv, frame)
		}
	}
}
