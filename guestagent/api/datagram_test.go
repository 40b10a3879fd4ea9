package api

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestDatagramRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, MaxDatagram)
	msgs := [][]byte{[]byte("hello"), {}, {0}, big, []byte("after the big one")}
	var stream bytes.Buffer
	for _, m := range msgs {
		if err := WriteDatagram(&stream, m); err != nil {
			t.Fatalf("write %d bytes: %v", len(m), err)
		}
	}
	wantLen := 0
	for _, m := range msgs {
		wantLen += 2 + len(m)
	}
	if stream.Len() != wantLen {
		t.Fatalf("stream is %d bytes, want %d", stream.Len(), wantLen)
	}
	// One byte per Read: frames must survive arbitrary fragmentation.
	r := iotest.OneByteReader(&stream)
	buf := make([]byte, MaxDatagram)
	for i, m := range msgs {
		n, err := ReadDatagram(r, buf)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], m) {
			t.Fatalf("datagram %d: got %d bytes, want %d", i, n, len(m))
		}
	}
	if _, err := ReadDatagram(r, buf); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func TestDatagramWireFormat(t *testing.T) {
	var b bytes.Buffer
	if err := WriteDatagram(&b, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Bytes(), []byte{0, 3, 'a', 'b', 'c'}; !bytes.Equal(got, want) {
		t.Fatalf("wire bytes %v, want %v", got, want)
	}
}

func TestDatagramTooLarge(t *testing.T) {
	var b bytes.Buffer
	err := WriteDatagram(&b, make([]byte, MaxDatagram+1))
	if !errors.Is(err, ErrDatagramTooLarge) {
		t.Fatalf("got %v, want ErrDatagramTooLarge", err)
	}
	if b.Len() != 0 {
		t.Fatalf("wrote %d bytes for a rejected datagram", b.Len())
	}
}

func TestDatagramTruncated(t *testing.T) {
	buf := make([]byte, 16)
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{"half a header", []byte{0}},
		{"header only", []byte{0, 5}},
		{"short payload", []byte{0, 5, 'a', 'b'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadDatagram(bytes.NewReader(tc.wire), buf)
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestDatagramShortBufferKeepsStreamInStep(t *testing.T) {
	var stream bytes.Buffer
	WriteDatagram(&stream, []byte("0123456789"))
	WriteDatagram(&stream, []byte("next"))
	buf := make([]byte, 4)
	n, err := ReadDatagram(&stream, buf)
	if !errors.Is(err, io.ErrShortBuffer) || string(buf[:n]) != "0123" {
		t.Fatalf("got %q, %v; want \"0123\", io.ErrShortBuffer", buf[:n], err)
	}
	n, err = ReadDatagram(&stream, buf)
	if err != nil || string(buf[:n]) != "next" {
		t.Fatalf("next frame: got %q, %v", buf[:n], err)
	}
}
