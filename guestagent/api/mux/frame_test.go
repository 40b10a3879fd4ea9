package mux

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// writeLog records the size and first bytes of every write to a carrier.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, append([]byte(nil), p...))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// TestDataFramesAreOneWrite: each yamux data frame reaches the carrier as one write (header
// and body together) from both ends; on a serial port every write costs a notification of
// the other side.
func TestDataFramesAreOneWrite(t *testing.T) {
	hc, gc := socketPair(t)
	hlog, glog := &writeLog{Conn: hc}, &writeLog{Conn: gc}
	cl, err := NewClient(hlog)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sv, err := NewServer(glog)
	if err != nil {
		t.Fatal(err)
	}
	defer sv.Close()
	l, _ := sv.Listen(9)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sv.Serve(ctx)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	c, err := cl.DialGuest(dctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("ping through the channel")
	c.Write(msg)
	c.(*Conn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echo %q, %v", got, err)
	}
	c.Close()
	for side, w := range map[string]*writeLog{"host": hlog, "guest": glog} {
		w.mu.Lock()
		frames := 0
		for _, p := range w.writes {
			if len(p) < frameHeaderSize || p[0] != frameVersion {
				t.Errorf("%s wrote %d bytes that do not start a frame: %q", side, len(p), p)
				continue
			}
			body := int(binary.BigEndian.Uint32(p[8:12]))
			if p[1] != frameTypeData {
				body = 0 // window updates, pings and go-aways carry no body
			}
			if len(p) != frameHeaderSize+body {
				t.Errorf("%s wrote a %d-byte piece of a frame with a %d-byte body: header and body must be one write", side, len(p), body)
			}
			if body > 0 {
				frames++
			}
		}
		if frames == 0 {
			t.Errorf("%s wrote no data frame", side)
		}
		w.mu.Unlock()
	}
}
