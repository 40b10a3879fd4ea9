package hostagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/netstack"
)

// fakeNet forwards every guest port to one loopback echo server, or refuses while refuse is
// set. A port in hold answers only when its channel is closed (a slow monitor).
type fakeNet struct {
	addr   string
	refuse error
	hold   map[uint16]chan struct{}

	mu       sync.Mutex
	forwards map[uint16]int // ForwardTCP calls per guest port
	removed  []string
}

func (f *fakeNet) ForwardTCP(_ context.Context, guestPort uint16) (string, error) {
	f.mu.Lock()
	f.forwards[guestPort]++
	f.mu.Unlock()
	if h := f.hold[guestPort]; h != nil {
		<-h
	}
	if f.refuse != nil {
		return "", f.refuse
	}
	return f.addr, nil
}

// waitAsked waits until the driver has been asked for guestPort once.
func (f *fakeNet) waitAsked(t *testing.T, guestPort uint16) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		asked := f.forwards[guestPort]
		f.mu.Unlock()
		if asked == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the driver was never asked for port %d", guestPort)
			return
		}
	}
}

func (f *fakeNet) UnforwardTCP(_ context.Context, hostAddr string) error {
	f.mu.Lock()
	f.removed = append(f.removed, hostAddr)
	f.mu.Unlock()
	return nil
}

func echoListener(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
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
	return l.Addr().String()
}

// errChannel marks a dial that went through the guest channel.
var errChannel = errors.New("channel")

func TestNetPath(t *testing.T) {
	running, runErr := 0, error(nil)
	idle, _, _ := testIdler(&running, &runErr)
	fn := &fakeNet{addr: echoListener(t), forwards: map[uint16]int{}}
	var channelled []api.ForwardRequest
	channel := func(_ context.Context, req api.ForwardRequest) (net.Conn, error) {
		channelled = append(channelled, req)
		return nil, errChannel
	}
	p := newNetPath(fn, channel, idle, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()

	// A wildcard TCP publish goes over the network, with one forward per guest port.
	for i := 0; i < 2; i++ {
		c, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9000})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if idle.active != 1 {
			t.Errorf("an open network connection holds the machine awake: active %d, want 1", idle.active)
		}
		c.Write([]byte("hi"))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
			t.Fatalf("echo over the network path: %q, %v", buf, err)
		}
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Errorf("half-close over the network path: %v", err)
		}
		c.Close()
	}
	if fn.forwards[9000] != 1 || idle.active != 0 {
		t.Errorf("forwards %v (want one for 9000), active %d after close (want 0)", fn.forwards, idle.active)
	}

	// Loopback and explicit-address publishes and UDP stay on the channel.
	for _, req := range []api.ForwardRequest{
		{Proto: "tcp", Port: 9001, IP: "127.0.0.1"},
		{Proto: "tcp", Port: 9001, IP: "::1"},
		{Proto: "udp", Port: 53},
	} {
		if _, err := p.Dial(ctx, req); !errors.Is(err, errChannel) {
			t.Errorf("%+v: dial = %v, want the channel", req, err)
		}
	}
	if len(channelled) != 3 || fn.forwards[9001] != 0 || fn.forwards[53] != 0 {
		t.Errorf("channel got %v, forwards %v", channelled, fn.forwards)
	}

	// A port the driver refuses goes through the channel, and is not asked again until it
	// is unpublished.
	fn.refuse = errors.New("Could not set up host forwarding rule")
	for i := 0; i < 2; i++ {
		if _, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9002}); !errors.Is(err, errChannel) {
			t.Errorf("refused port: dial = %v, want the channel", err)
		}
	}
	if fn.forwards[9002] != 1 {
		t.Errorf("a refused port was asked %d times, want 1", fn.forwards[9002])
	}

	// Pruning keeps the forwards of ports still published on the wildcard and removes the rest.
	p.prune(ctx, []api.Port{{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 9000}})
	if len(fn.removed) != 0 {
		t.Errorf("a live forward was removed: %v", fn.removed)
	}
	p.prune(ctx, []api.Port{{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 9000}})
	if len(fn.removed) != 1 || fn.removed[0] != fn.addr {
		t.Errorf("removed %v after 9000 left the wildcard, want [%s]", fn.removed, fn.addr)
	}
	fn.refuse = nil
	if c, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9002}); err != nil {
		t.Errorf("a port refused before it was unpublished is asked again: %v", err)
	} else {
		c.Close()
	}

	// A driver that declines every port (the channel is the better path) is asked once.
	fn.refuse = fmt.Errorf("vsock: %w", driver.ErrUnsupported)
	for _, port := range []uint16{9004, 9005} {
		if _, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: port}); !errors.Is(err, errChannel) {
			t.Errorf("declined: dial = %v, want the channel", err)
		}
	}
	if fn.forwards[9004] != 1 || fn.forwards[9005] != 0 {
		t.Errorf("a driver that declined was asked again: %v", fn.forwards)
	}
	p.off, fn.refuse = false, nil

	// A forward that no longer answers falls back to the channel, with nothing held.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	fn.addr = dead.Addr().String()
	dead.Close()
	if _, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9003}); !errors.Is(err, errChannel) || idle.active != 0 {
		t.Errorf("dead forward: dial = %v (want the channel), active %d", err, idle.active)
	}
}

// TestNetPathSlowDriver: while the driver sets up one port's forward, dials of other ports
// go on; dials of that port wait for the one answer; a forward that lands after its port was
// unpublished is removed at once instead of being kept.
func TestNetPathSlowDriver(t *testing.T) {
	running, runErr := 0, error(nil)
	idle, _, _ := testIdler(&running, &runErr)
	fn := &fakeNet{addr: echoListener(t), forwards: map[uint16]int{}, hold: map[uint16]chan struct{}{}}
	channel := func(context.Context, api.ForwardRequest) (net.Conn, error) { return nil, errChannel }
	p := newNetPath(fn, channel, idle, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	slow := uint16(9100)
	fn.hold[slow] = make(chan struct{})

	// dial dials port in the background; the channel gets its error.
	dial := func(port uint16) <-chan error {
		res := make(chan error, 1)
		go func() {
			c, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: port})
			if err == nil {
				c.Close()
			}
			res <- err
		}()
		return res
	}
	results := []<-chan error{dial(slow), dial(slow)}
	// Both dials of the slow port are under way (one asking, one waiting) once the driver
	// has been asked; a dial of another port must not wait for them.
	fn.waitAsked(t, slow)
	if t.Failed() {
		t.FailNow()
	}
	other := dial(9101)
	select {
	case err := <-other:
		if err != nil {
			t.Errorf("dial of another port: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a dial of another port waited for the driver's answer about the slow one")
	}
	close(fn.hold[slow])
	for _, res := range results {
		if err := <-res; err != nil {
			t.Errorf("dial of the slow port: %v", err)
		}
	}
	if fn.forwards[slow] != 1 {
		t.Errorf("the slow port was asked %d times, want one answer shared", fn.forwards[slow])
	}

	// The port is unpublished while the driver is still setting its forward up.
	late := uint16(9102)
	fn.hold[late] = make(chan struct{})
	go func() {
		fn.waitAsked(t, late)
		p.prune(ctx, []api.Port{{Proto: "tcp", HostIP: "0.0.0.0", HostPort: slow}})
		close(fn.hold[late])
	}()
	if _, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: late}); !errors.Is(err, errChannel) {
		t.Errorf("dial of a port unpublished meanwhile = %v, want the channel", err)
	}
	// 9101's forward went in that prune; 9102's must go too, not stay behind.
	fn.mu.Lock()
	removed := len(fn.removed)
	fn.mu.Unlock()
	if removed != 2 {
		t.Errorf("removed %v, want the forwards of 9101 and of 9102", fn.removed)
	}
	if _, ok := p.addrs[late]; ok {
		t.Error("the late forward was kept")
	}
}

// nicLink returns a forwarding NIC's host stack whose guest end echoes on port; with
// port 0 nothing is on the guest end at all (an image that never configured the NIC).
func nicLink(t *testing.T, port uint16) *netstack.Stack {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("no datagram socket pairs on Windows")
	}
	h, v, err := netstack.Pair()
	if err != nil {
		t.Fatal(err)
	}
	host, err := netstack.New(h, netstack.HostEnd(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(); v.Close() })
	if port == 0 {
		return host
	}
	g, err := net.FileConn(v)
	if err != nil {
		t.Fatal(err)
	}
	guest, err := netstack.New(g, netstack.GuestEnd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guest.Close() })
	l, err := guest.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return host
}

// TestNetPathForwardNIC: with a forwarding NIC, wildcard TCP publishes go through it and need
// no per-port forward; a refused port falls back to the channel; a NIC that stopped, or
// that nothing answers on, sends every later dial to the other paths at once.
func TestNetPathForwardNIC(t *testing.T) {
	running, runErr := 0, error(nil)
	idle, _, _ := testIdler(&running, &runErr)
	var mu sync.Mutex
	channelled := 0
	channel := func(context.Context, api.ForwardRequest) (net.Conn, error) {
		mu.Lock()
		channelled++
		mu.Unlock()
		return nil, errChannel
	}
	p := newNetPath(nil, channel, idle, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	nic := nicLink(t, 9000)
	p.useNIC(nic)

	c, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9000})
	if err != nil {
		t.Fatalf("dial through the NIC: %v", err)
	}
	if idle.active != 1 {
		t.Errorf("an open NIC connection holds the machine awake: active %d, want 1", idle.active)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("hi"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo through the NIC: %q, %v", buf, err)
	}
	c.Close()
	if idle.active != 0 || channelled != 0 {
		t.Errorf("after close: active %d (want 0), channel dials %d (want 0)", idle.active, channelled)
	}
	for _, req := range []api.ForwardRequest{
		{Proto: "udp", Port: 9000},
		{Proto: "tcp", Port: 9000, IP: "127.0.0.1"},
		{Proto: "tcp", Port: 9001}, // refused by the guest: the channel may know better
	} {
		if _, err := p.Dial(ctx, req); !errors.Is(err, errChannel) {
			t.Errorf("%+v: dial = %v, want the channel", req, err)
		}
	}
	if c, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9000}); err != nil {
		t.Errorf("a refused port took the NIC out of use: %v", err)
	} else {
		c.Close()
	}

	nic.Close()
	if _, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9000}); !errors.Is(err, errChannel) {
		t.Errorf("dial after the NIC stopped: %v, want the channel", err)
	}

	p.useNIC(nicLink(t, 0))
	if _, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9000}); !errors.Is(err, errChannel) {
		t.Fatalf("dial with nobody on the NIC: %v, want the channel", err)
	}
	began := time.Now()
	if _, err := p.Dial(ctx, api.ForwardRequest{Proto: "tcp", Port: 9000}); !errors.Is(err, errChannel) || time.Since(began) > time.Second {
		t.Errorf("second dial with nobody on the NIC: %v after %v, want the channel at once", err, time.Since(began))
	}
}
