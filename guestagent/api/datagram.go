package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// UDP over a stream: a ServiceForward stream opened with Proto "udp" carries datagrams in
// both directions, each as a 2-byte big-endian length followed by that many payload bytes.
// A zero length is a valid (empty) datagram.

// MaxDatagram is the largest payload a datagram frame can carry.
const MaxDatagram = 1<<16 - 1

// ErrDatagramTooLarge is returned by WriteDatagram for a payload above MaxDatagram.
var ErrDatagramTooLarge = errors.New("datagram too large")

// WriteDatagram writes p as one frame with a single Write, so a frame is never interleaved
// with another writer's bytes on transports that keep writes whole.
func WriteDatagram(w io.Writer, p []byte) error {
	if len(p) > MaxDatagram {
		return fmt.Errorf("%w: %d bytes", ErrDatagramTooLarge, len(p))
	}
	buf := make([]byte, 2+len(p))
	binary.BigEndian.PutUint16(buf, uint16(len(p)))
	copy(buf[2:], p)
	_, err := w.Write(buf)
	return err
}

// ReadDatagram reads one frame into buf and returns the payload length. It returns io.EOF
// only when the stream ends cleanly between frames, and io.ErrUnexpectedEOF when it ends
// inside one. A payload longer than buf is consumed (the stream stays in step) and reported
// as io.ErrShortBuffer with n = len(buf) bytes kept; a buf of MaxDatagram bytes never fails so.
func ReadDatagram(r io.Reader, buf []byte) (n int, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	size := int(binary.BigEndian.Uint16(hdr[:]))
	n = min(size, len(buf))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, datagramEOF(err)
	}
	if size > n {
		if _, err := io.CopyN(io.Discard, r, int64(size-n)); err != nil {
			return 0, datagramEOF(err)
		}
		return n, fmt.Errorf("datagram of %d bytes into a %d-byte buffer: %w", size, len(buf), io.ErrShortBuffer)
	}
	return n, nil
}

// datagramEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func datagramEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
