package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// The guest opens streams to host services on the same session the host dials it on.
func TestDialHost(t *testing.T) {
	hostEnd, guestEnd := net.Pipe()
	c, err := NewClient(hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewServer(guestEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go c.ServeHost(func(service uint32) func(net.Conn) {
		if service != 2410 {
			return nil
		}
		return func(conn net.Conn) {
			defer conn.Close()
			b, _ := io.ReadAll(conn)
			conn.Write(append([]byte("host got "), b...))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := s.DialHost(ctx, 2410)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("ping"))
	conn.(*Conn).CloseWrite() // half-close reaches the host handler as EOF
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "host got ping" {
		t.Errorf("reply %q, %v", b, err)
	}
	conn.Close()
	if _, err := s.DialHost(ctx, 9999); !errors.Is(err, ErrNoService) {
		t.Errorf("a service the host does not serve: %v, want ErrNoService", err)
	}
}

func TestDialHostEndsWithContext(t *testing.T) {
	hostEnd, guestEnd := net.Pipe()
	defer hostEnd.Close()
	s, err := NewServer(guestEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Nobody reads the host end: the dial must give up when ctx ends.
	go io.Copy(io.Discard, hostEnd)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := s.DialHost(ctx, 2410); !errors.Is(err, context.Canceled) {
		t.Errorf("dial after cancel: %v, want context.Canceled", err)
	}
}
