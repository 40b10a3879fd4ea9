package mux

import (
	"encoding/binary"
	"io"
	"sync"
)

// yamux frame header layout (hashicorp/yamux spec.md): version, type, flags (2 bytes),
// stream ID (4), length (4).
const (
	frameHeaderSize = 12
	frameVersion    = 0
	frameTypeData   = 0
)

// frameWriter gives the carrier each yamux data frame in one write. yamux's send loop writes
// a frame's 12-byte header and its body with two calls; on a virtio-serial port every write
// is a syscall, a virtqueue buffer and a notification of the other side (an exit to QEMU,
// costly under emulation), so two writes per frame doubled that cost on every payload in
// both directions. A data header announcing a body is held and sent with the write that
// follows, which in yamux's send loop is always that body; everything else passes through.
type frameWriter struct {
	io.ReadWriteCloser

	mu   sync.Mutex
	held bool
	buf  []byte
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held {
		w.held = false
		w.buf = append(w.buf[:frameHeaderSize], p...)
		n, err := w.ReadWriteCloser.Write(w.buf)
		n = max(n-frameHeaderSize, 0)
		if cap(w.buf) > 1<<20 {
			w.buf = append([]byte(nil), w.buf[:frameHeaderSize]...)
		}
		return n, err
	}
	if len(p) == frameHeaderSize && p[0] == frameVersion && p[1] == frameTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		w.buf = append(w.buf[:0], p...)
		w.held = true
		return len(p), nil
	}
	return w.ReadWriteCloser.Write(p)
}
