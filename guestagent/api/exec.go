package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ExecRequest is the JSON line that opens a ServiceExec stream. After it both directions carry
// frames (WriteFrame/ReadFrame).
type ExecRequest struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	// TTY runs the command on a pseudo-terminal of Rows x Cols; stdout and stderr merge.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// Frame types of the exec stream.
const (
	FrameStdin    byte = 0 // host -> guest: bytes for the command's stdin
	FrameStdout   byte = 1 // guest -> host
	FrameStderr   byte = 2 // guest -> host
	FrameStdinEOF byte = 3 // host -> guest: close the command's stdin; no payload
	FrameResize   byte = 4 // host -> guest: rows, cols as two big-endian uint16
	FrameExit     byte = 5 // guest -> host: exit status as a big-endian int32; last frame
	FrameError    byte = 6 // guest -> host: the command could not start; payload is the message
)

// MaxFramePayload bounds a frame so a corrupt length cannot make a reader allocate gigabytes.
const MaxFramePayload = 1 << 20

// ErrFrameTooLarge is returned by ReadFrame for a length above MaxFramePayload.
var ErrFrameTooLarge = errors.New("exec frame too large")

// WriteFrame writes one frame: a type byte, a big-endian uint32 length and the payload.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFramePayload {
		return ErrFrameTooLarge
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame written by WriteFrame.
func ReadFrame(r io.Reader) (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > MaxFramePayload {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("exec frame payload: %w", io.ErrUnexpectedEOF)
	}
	return hdr[0], payload, nil
}

// ResizePayload encodes a FrameResize payload.
func ResizePayload(rows, cols uint16) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b[0:2], rows)
	binary.BigEndian.PutUint16(b[2:4], cols)
	return b
}

// ParseResize decodes a FrameResize payload.
func ParseResize(p []byte) (rows, cols uint16, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("resize frame: want 4 bytes, got %d", len(p))
	}
	return binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]), nil
}

// ExitPayload encodes a FrameExit payload.
func ExitPayload(code int) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(int32(code)))
	return b
}

// ParseExit decodes a FrameExit payload.
func ParseExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("exit frame: want 4 bytes, got %d", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}
