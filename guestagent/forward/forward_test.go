package forward_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/forward"
)

// startRelay runs Serve on a loopback listener and returns its address.
func startRelay(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- forward.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// open opens a stream to the relay as the host would and sends req.
func open(t *testing.T, relay string, req api.ForwardRequest) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", relay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	line, _ := json.Marshal(req)
	if _, err := c.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

func port(t *testing.T, addr net.Addr) uint16 {
	t.Helper()
	_, p, _ := net.SplitHostPort(addr.String())
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// tailServer reads until EOF, then answers how many bytes it got and closes: the answer
// arrives only if the half-close passed through and the other direction stayed open.
func tailServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "got %d bytes", n)
			}()
		}
	}()
	return ln
}

func TestTCPHalfClose(t *testing.T) {
	relay := startRelay(t)
	srv := tailServer(t)
	c := open(t, relay, api.ForwardRequest{Proto: "tcp", Port: port(t, srv.Addr()), IP: "127.0.0.1"})
	if _, err := c.Write([]byte("hello, guest")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "got 12 bytes" {
		t.Fatalf("got %q", got)
	}
}

func TestTCPDataRightAfterRequest(t *testing.T) {
	// The request line and the first bytes arrive in one segment; none may be lost.
	relay := startRelay(t)
	srv := tailServer(t)
	c, err := net.Dial("tcp", relay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, _ := json.Marshal(api.ForwardRequest{Proto: "tcp", Port: port(t, srv.Addr()), IP: "127.0.0.1"})
	c.Write(append(append(line, '\n'), "abc"...))
	c.(*net.TCPConn).CloseWrite()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(c)
	if string(got) != "got 3 bytes" {
		t.Fatalf("got %q", got)
	}
}

func TestTCPRefusedEndsStream(t *testing.T) {
	relay := startRelay(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	p := port(t, ln.Addr())
	ln.Close()
	c := open(t, relay, api.ForwardRequest{Proto: "tcp", Port: p, IP: "127.0.0.1"})
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Fatalf("got %d, %v; want the stream closed", n, err)
	}
}

func TestBadRequestsEndStream(t *testing.T) {
	relay := startRelay(t)
	for _, line := range []string{
		"not json\n",
		`{"proto":"sctp","port":80}` + "\n",
		`{"proto":"tcp","port":0}` + "\n",
	} {
		c, err := net.Dial("tcp", relay)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(line))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || err != io.EOF {
			t.Errorf("%q: got %d, %v; want the stream closed", line, n, err)
		}
	}
}

func TestUDPRelay(t *testing.T) {
	relay := startRelay(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // answers "echo:" + datagram
		buf := make([]byte, api.MaxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	c := open(t, relay, api.ForwardRequest{Proto: "udp", Port: port(t, pc.LocalAddr()), IP: "127.0.0.1"})
	buf := make([]byte, api.MaxDatagram)
	for _, msg := range []string{"one", "two", ""} {
		if err := api.WriteDatagram(c, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		n, err := api.ReadDatagram(c, buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != "echo:"+msg {
			t.Fatalf("got %q, want %q", got, "echo:"+msg)
		}
	}
	// Closing the stream's write side ends the flow: the relay closes its side too.
	c.CloseWrite()
	if _, err := api.ReadDatagram(c, buf); err != io.EOF {
		t.Fatalf("after CloseWrite: %v, want io.EOF", err)
	}
}

func TestServeStopsRelaysOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := tailServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- forward.Serve(ctx, ln) }()
	c := open(t, ln.Addr().String(), api.ForwardRequest{Proto: "tcp", Port: port(t, srv.Addr()), IP: "127.0.0.1"})
	c.Write([]byte("x")) // the relay is established once the tail server has a conn
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel with a relay open")
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("open stream after cancel: %v, want EOF", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepts after cancel")
	}
}
