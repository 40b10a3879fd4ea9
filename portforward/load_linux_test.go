package portforward

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settle polls until fds and goroutines are back within slack of their baselines (or 5 s
// pass) and returns the last counts.
func settle(t testing.TB, baseFDs, baseG, slack int) (fds, gs int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fds, gs = openFDs(t), runtime.NumGoroutine()
		if (fds <= baseFDs+slack && gs <= baseG+slack) || time.Now().After(deadline) {
			return fds, gs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loadSetup forwards a fresh port through the mux guest to an echo backend.
func loadSetup(t testing.TB) (uint16, *Forwarder) {
	g := newMuxGuest(t)
	backend := serveTCPBackend(t, echo)
	p := freePort(t, ProtoTCP)
	g.route(p, backend.Addr())
	f := newForwarder(t, g)
	if err := f.Sync(context.Background(), []api.Port{tcpPort(p)}); err != nil {
		t.Fatal(err)
	}
	return p, f
}

func ping(addr string) error {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := roundTrip(c, "ping")
	if err == nil && got != "ping" {
		err = fmt.Errorf("echo %q", got)
	}
	return err
}

func TestNoLeakAfter10000Connections(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections: skipped with -short")
	}
	p, _ := loadSetup(t)
	addr := "127.0.0.1:" + itoa(p)
	if err := ping(addr); err != nil { // warm up: first-use allocations are not leaks
		t.Fatal(err)
	}
	baseFDs, baseG := settle(t, 0, 0, 1<<30)
	const n = 10000
	start := time.Now()
	for i := range n {
		if err := ping(addr); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	const slack = 5
	fds, gs := settle(t, baseFDs, baseG, slack)
	t.Logf("%d sequential forwarded connections in %v (%.0f/s); fds %d -> %d, goroutines %d -> %d",
		n, elapsed.Round(time.Millisecond), n/elapsed.Seconds(), baseFDs, fds, baseG, gs)
	if fds > baseFDs+slack || gs > baseG+slack {
		t.Fatalf("leak: fds %d -> %d, goroutines %d -> %d (slack %d)", baseFDs, fds, baseG, gs, slack)
	}
}

// raiseFDLimit makes room for want descriptors, or skips.
func raiseFDLimit(t *testing.T, want uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur >= want {
		return
	}
	old := lim
	lim.Cur = max(lim.Cur, want)
	lim.Max = max(lim.Max, lim.Cur)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("need %d file descriptors, limit is %d and cannot be raised: %v", want, old.Cur, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

func TestConcurrent4096Connections(t *testing.T) {
	if testing.Short() {
		t.Skip("4,096 concurrent connections: skipped with -short")
	}
	if raceEnabled {
		t.Skip("4,096 connections need ~29,000 goroutines; the race detector allows 8,128")
	}
	const n = 4096
	// Per connection: client, host side, guest-to-backend and backend side.
	raiseFDLimit(t, uint64(4*n+1024))
	p, f := loadSetup(t)
	addr := "127.0.0.1:" + itoa(p)
	baseFDs, baseG := settle(t, 0, 0, 1<<30)

	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	work := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					continue
				}
				c.SetDeadline(time.Now().Add(60 * time.Second))
				conns[i] = c
				msg := fmt.Sprintf("conn %04d", i)
				if got, err := roundTrip(c, msg); err != nil || got != msg {
					errs <- fmt.Errorf("conn %d: %q, %v", i, got, err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	opened := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	heldFDs, heldG := openFDs(t), runtime.NumGoroutine()
	// All are open at once: each still answers, now that every other one exists too.
	for i := len(conns) - 1; i >= 0; i-- {
		msg := fmt.Sprintf("again %04d", i)
		if got, err := roundTrip(conns[i], msg); err != nil || got != msg {
			t.Fatalf("held conn %d: %q, %v", i, got, err)
		}
	}
	if st := f.Status(); st[0].State != StateForwarding {
		t.Fatalf("status %+v", st)
	}
	for _, c := range conns {
		c.Close()
	}
	const slack = 5
	fds, gs := settle(t, baseFDs, baseG, slack)
	t.Logf("%d concurrent connections opened and echoed in %v; held: %d fds, %d goroutines; after close: fds %d -> %d, goroutines %d -> %d",
		n, opened.Round(time.Millisecond), heldFDs, heldG, baseFDs, fds, baseG, gs)
	if heldFDs < baseFDs+2*n {
		t.Fatalf("only %d fds while holding %d connections: they were not all open at once", heldFDs, n)
	}
	if fds > baseFDs+slack || gs > baseG+slack {
		t.Fatalf("leak: fds %d -> %d, goroutines %d -> %d", baseFDs, fds, baseG, gs)
	}
}
