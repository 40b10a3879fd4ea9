package dockerproxy

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestHalfClose: the host writes a request and half-closes; the engine sees EOF, answers
// after it, and the host reads the whole answer, as docker run -i needs.
func TestHalfClose(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	engine, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	go func() {
		c, err := engine.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c) // returns only once the host's half-close arrives
		c.Write([]byte("got " + string(b)))
	}()

	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, front, sock, nil) }()

	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("stdin data")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "got stdin data" {
		t.Fatalf("read %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestEngineDownClosesStream(t *testing.T) {
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, front, filepath.Join(t.TempDir(), "absent.sock"), nil)
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from stream with no engine: %d, %v; want EOF", n, err)
	}
}
