package transport

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/mux"
)

// frozenPort models the guest's serial port across a host hang-up the guest never saw: one
// device, whose reads are whatever any host writes, and whose writes reach the host that is
// connected now. Closing it (a reopen) is counted; the bytes in flight stay, so a guest that
// reopens is not failed by the model, only by losing the preamble.
type frozenPort struct {
	r *io.PipeReader
	w *io.PipeWriter

	mu     sync.Mutex
	out    *io.PipeWriter // the connected host's inbound pipe
	closes int
}

func newFrozenPort() *frozenPort {
	r, w := io.Pipe()
	return &frozenPort{r: r, w: w}
}

func (p *frozenPort) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p *frozenPort) Write(b []byte) (int, error) {
	p.mu.Lock()
	out := p.out
	p.mu.Unlock()
	if out == nil {
		return len(b), nil
	}
	out.Write(b)
	return len(b), nil
}
func (p *frozenPort) Close() error { p.mu.Lock(); p.closes++; p.mu.Unlock(); return nil }

// connect makes a new host the port's peer: it writes the preamble and starts a mux client.
// The previous host's writes are dropped from now on (its connection is gone).
func (p *frozenPort) connect(t *testing.T) *mux.Client {
	in, out := io.Pipe()
	h := &hostEnd{in: in, port: p}
	p.mu.Lock()
	if p.out != nil {
		p.out.Close()
	}
	p.out = out
	p.mu.Unlock()
	h.live = true
	if _, err := io.WriteString(p.w, mux.Preamble); err != nil {
		t.Fatal(err)
	}
	c, err := mux.NewClient(h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type hostEnd struct {
	in   *io.PipeReader
	port *frozenPort
	mu   sync.Mutex
	live bool
}

func (h *hostEnd) Read(b []byte) (int, error) { return h.in.Read(b) }
func (h *hostEnd) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.live {
		return len(b), nil
	}
	return h.port.w.Write(b)
}
func (h *hostEnd) Close() error { h.mu.Lock(); h.live = false; h.mu.Unlock(); return h.in.Close() }

// TestSerialServesAHostThatBeganInsideTheOldSession: after a freeze the guest's old session
// reads a new host's preamble as frames and fails on them; the next session must start at
// that preamble, not wait for one the host never sends again (the 20 s host-sleep recovery).
func TestSerialServesAHostThatBeganInsideTheOldSession(t *testing.T) {
	port := newFrozenPort()
	ch := serialChannel(func() (io.ReadWriteCloser, error) { return port, nil }, []uint32{api.ServiceControl}, "", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ch.Serve(ctx); close(done) }()
	defer func() { cancel(); port.r.Close(); <-done }()
	go func() {
		for {
			c, err := ch.Listener(api.ServiceControl).Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	dial := func(host *mux.Client, which string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := host.DialGuest(ctx, api.ServiceControl)
		if err != nil {
			t.Fatalf("%s host: %v", which, err)
		}
		defer c.Close()
		if b, _ := io.ReadAll(c); string(b) != "hi" {
			t.Fatalf("%s host read %q", which, b)
		}
	}
	first := port.connect(t)
	dial(first, "first")
	// The first host vanishes without an EOF reaching the guest, and a second one begins.
	second := port.connect(t)
	defer first.Close()
	defer second.Close()
	dial(second, "second")
	port.mu.Lock()
	closes := port.closes
	port.mu.Unlock()
	if closes != 0 {
		t.Errorf("the port was closed %d times (a close discards what the kernel buffered)", closes)
	}
}

func TestPreambleTail(t *testing.T) {
	p := mux.Preamble
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"\x00\x01frames", ""},
		{"junk" + p + "tok\nping", p + "tok\nping"},
		{p + "old" + p + "new", p + "new"},
		{"junk" + p[:7], p[:7]},
		{"junk" + p[:1], p[:1]},
		{"MACHINE", "MACHINE"},
	} {
		if got := preambleTail([]byte(tt.in)); !bytes.Equal(got, []byte(tt.want)) {
			t.Errorf("preambleTail(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestHandoverNeverReusesADeviceWithAReadPending: a session that ended while its reader was
// still blocked on the device (the guest's keepalive gave up on a host) must not leave that
// read to steal the next session's bytes.
func TestHandoverNeverReusesADeviceWithAReadPending(t *testing.T) {
	pr, pw := io.Pipe()
	r := &sessionReader{dev: pr}
	r.record()
	got := make(chan error, 1)
	go func() { _, err := r.Read(make([]byte, 8)); got <- err }()
	for {
		r.mu.Lock()
		p := r.pending
		r.mu.Unlock()
		if p == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	r.end() // closes the device to unblock the read
	if err := <-got; err == nil {
		t.Fatal("the pending read returned no error after end")
	}
	if _, reuse := r.handover(); reuse {
		t.Fatal("handover reuses a device whose read was pending")
	}
	pw.Close()
	// After end, reads never touch the device.
	r2 := &sessionReader{dev: pr}
	r2.end()
	if n, err := r2.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read after end = %d, %v; want 0, EOF", n, err)
	}
}
