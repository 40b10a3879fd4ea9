package portforward

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/machine-run/machine/guestagent/api"
)

// The guest decides what is published; the host binds at most MaxForwards of them.
func TestForwardsAreCapped(t *testing.T) {
	g := newMuxGuest(t)
	f := newForwarder(t, g)
	f.MaxForwards = 2
	ports := []api.Port{tcpPort(freePort(t, ProtoTCP)), tcpPort(freePort(t, ProtoTCP)), tcpPort(freePort(t, ProtoTCP))}
	if err := f.Sync(context.Background(), ports); err != nil {
		t.Fatal(err)
	}
	forwarding, capped := 0, 0
	for _, s := range f.Status() {
		switch {
		case s.State == StateForwarding:
			forwarding++
		case s.State == StateError && strings.Contains(s.Error, "more than 2 ports"):
			capped++
		}
	}
	if forwarding != 2 || capped != 1 {
		t.Fatalf("%d forwarding, %d capped; want 2 and 1: %+v", forwarding, capped, f.Status())
	}
	// Once a port goes, the capped one gets its place at the next sync.
	if err := f.Sync(context.Background(), ports[1:]); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Status() {
		if s.State != StateForwarding {
			t.Errorf("after one port went: %+v", s)
		}
	}
}

// A busy host port is tried MaxBindAttempts times, then given up and reported as such.
func TestBusyPortGivesUp(t *testing.T) {
	g := newMuxGuest(t)
	squatter, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	p := portOf(squatter.Addr())
	f := newForwarder(t, g)
	f.MaxBindAttempts = 3
	f.Sync(context.Background(), []api.Port{tcpPort(p)})
	eventually(t, "the busy port to be given up", func() bool {
		s := f.Status()[0]
		return s.State == StateError && !s.Retrying && strings.Contains(s.Error, "gave up after 3 attempts") && strings.Contains(s.Error, "address already in use")
	})
}
