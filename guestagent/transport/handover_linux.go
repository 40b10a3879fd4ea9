package transport

import (
	"bytes"
	"io"
	"sync"

	"github.com/machine-run/machine/guestagent/api/mux"
)

// A guest session can outlive its host without seeing an end-of-file: when the VM was frozen
// (a host asleep, SIGSTOP) the host hangs up and dials again before the guest runs, and when
// it runs QEMU may report the hang-up and the new connection so close together that the old
// session never reads the EOF. The old session then reads the new host's preamble and token
// as frames, fails on them, and whatever it had read is gone: the next session waits for a
// preamble the host will not send again until it gives up on this carrier (tens of seconds).
//
// So the serial port is not reopened after a session that ended on a bad frame (closing the
// port discards what the kernel buffered), and the bytes the old session read after its
// handshake are searched for the latest preamble: the next session starts there.

// tailKeep bounds the bytes a session remembers of what it read (the preamble of a new host
// is among the last few reads: the old session fails on the first frame header it meets).
const tailKeep = 16 << 10

// sessionReader is the read side of one session: first carry (the bytes an earlier session
// read past a new host's preamble), then the device. Once recording (after the handshake) it
// keeps the tail of what it read, and it knows whether a device read is still pending (a
// session that ended with a read outstanding would steal the next session's bytes) and
// whether the device reported an error (the host hung up).
type sessionReader struct {
	dev   io.ReadCloser
	carry []byte

	mu        sync.Mutex
	recording bool
	ended     bool // handed over: the old session's reads get EOF and never touch the device
	tail      []byte
	pending   int
	devErr    error
}

func (r *sessionReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if len(r.carry) > 0 && !r.ended {
		n := copy(p, r.carry)
		r.carry = r.carry[n:]
		r.keep(p[:n])
		r.mu.Unlock()
		return n, nil
	}
	if r.ended {
		r.mu.Unlock()
		return 0, io.EOF
	}
	r.pending++
	r.mu.Unlock()
	n, err := r.dev.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending--
	r.keep(p[:n])
	if err != nil && r.devErr == nil {
		r.devErr = err
	}
	return n, err
}

// keep records b in the tail while recording. Called with mu held.
func (r *sessionReader) keep(b []byte) {
	if !r.recording || len(b) == 0 {
		return
	}
	r.tail = append(r.tail, b...)
	if len(r.tail) > tailKeep {
		r.tail = append(r.tail[:0], r.tail[len(r.tail)-tailKeep/2:]...)
	}
}

// record starts keeping the tail: everything before it is this session's own handshake.
func (r *sessionReader) record() {
	r.mu.Lock()
	r.recording = true
	r.mu.Unlock()
}

// handover says how the next session continues once this one has ended: reuse says the
// device can stay open (no read is pending and the device reported no error), and carry is
// what the next session must read first (nil when nothing the old session read starts a new
// host's preamble). After it the old session reads only end-of-file.
func (r *sessionReader) handover() (carry []byte, reuse bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	unread := r.carry
	r.carry = nil
	if r.pending > 0 || r.devErr != nil {
		return nil, false
	}
	rest := append(preambleTail(r.tail), unread...)
	if len(rest) == 0 {
		return nil, true
	}
	return rest, true
}

// preambleTail returns b from the start of its last mux.Preamble, or else its longest suffix
// that begins one (a preamble whose rest is still unread), or else nothing.
func preambleTail(b []byte) []byte {
	want := []byte(mux.Preamble)
	if i := bytes.LastIndex(b, want); i >= 0 {
		return bytes.Clone(b[i:])
	}
	for n := min(len(want)-1, len(b)); n > 0; n-- {
		if bytes.Equal(b[len(b)-n:], want[:n]) {
			return bytes.Clone(b[len(b)-n:])
		}
	}
	return nil
}

// end ends the session's use of the device: later reads get end-of-file. A read still
// pending is unblocked by closing the device (yamux's Close waits for its reader), which
// handover then reports as not reusable.
func (r *sessionReader) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	if r.pending > 0 {
		r.dev.Close()
	}
}

// sessionConn is the device as one session sees it: reads through its sessionReader, and a
// Close that leaves the device open unless a read is pending (the channel decides, from
// handover, whether to reopen it).
type sessionConn struct {
	*sessionReader
	dev io.Writer
}

func (c sessionConn) Write(p []byte) (int, error) { return c.dev.Write(p) }
func (c sessionConn) Close() error                { c.end(); return nil }
