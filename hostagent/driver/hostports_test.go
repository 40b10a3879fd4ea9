package driver

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// TestServeHostPortsListensOnEveryServedService: one listener per host service the handler
// serves, each connection reaches that service's handler, and a listen failure closes what
// was opened.
func TestServeHostPortsListensOnEveryServedService(t *testing.T) {
	opened := map[uint32]net.Listener{}
	listen := func(port uint32) (net.Listener, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		opened[port] = l
		return l, err
	}
	got := make(chan uint32, 4)
	handler := func(svc uint32) func(net.Conn) {
		if svc == api.ServiceHostWatch {
			return nil // not served: no port
		}
		return func(c net.Conn) { got <- svc; c.Close() }
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := ServeHostPorts(ctx, listen, handler, nil); err != nil {
		t.Fatal(err)
	}
	var ports []uint32
	for p := range opened {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	if want := []uint32{api.ServiceHostConnect, api.ServiceHostDNS}; !slices.Equal(ports, want) {
		t.Fatalf("listened on %v, want %v", ports, want)
	}
	for _, svc := range ports {
		c, err := net.Dial("tcp", opened[svc].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(c)
		c.Close()
		select {
		case s := <-got:
			if s != svc {
				t.Fatalf("a connection to port %d reached service %d", svc, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("port %d: no handler call", svc)
		}
	}
	cancel()
	for svc, l := range opened {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("port %d still accepts after ctx ended", svc)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	var first net.Listener
	boom := errors.New("port in use")
	err := ServeHostPorts(context.Background(), func(port uint32) (net.Listener, error) {
		if first == nil {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			first = l
			return l, err
		}
		return nil, boom
	}, func(uint32) func(net.Conn) { return func(c net.Conn) { c.Close() } }, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the listen error", err)
	}
	if _, err := first.Accept(); err == nil {
		t.Fatal("the port opened before the failure is still open")
	}
}
