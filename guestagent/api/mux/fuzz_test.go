package mux

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// FuzzStreamHeader sends arbitrary bytes as a stream's opening (the 4-byte service header
// and what follows) to a real Server: it answers OK for a served service and "no service"
// for any other, hands the rest of the bytes to the service intact, and never panics.
func FuzzStreamHeader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 7, 'h', 'i'})
	f.Add([]byte{0, 0, 0, 8})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		hc, gc := net.Pipe()
		srv, err := NewServer(gc)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		l, err := srv.Listen(7)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go srv.Serve(ctx)
		got := make(chan []byte, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			b, _ := io.ReadAll(c)
			got <- b
		}()
		sess, err := yamux.Client(hc, config(false))
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		st, err := sess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		st.Write(data)
		st.Close() // a yamux Close is a half-close: the reply can still be read
		if len(data) < 4 {
			return // the server drops it after its header deadline, or at EOF
		}
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		var status [1]byte
		if _, err := io.ReadFull(st, status[:]); err != nil {
			t.Fatalf("no status byte: %v", err)
		}
		served := binary.BigEndian.Uint32(data) == 7
		switch {
		case served && status[0] != statusOK, !served && status[0] != statusNoService:
			t.Fatalf("service %d: status %d", binary.BigEndian.Uint32(data), status[0])
		case served:
			select {
			case b := <-got:
				if string(b) != string(data[4:]) {
					t.Fatalf("service got %q, want %q", b, data[4:])
				}
			case <-time.After(5 * time.Second):
				t.Fatal("service never got the stream's bytes")
			}
		}
	})
}
