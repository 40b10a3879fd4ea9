package transport

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/machine-run/machine/guestagent/api/mux"
)

// errBadToken: the peer on the serial channel did not present the boot token.
var errBadToken = errors.New("channel: peer did not present the token from the kernel command line")

// checkToken reads the first line of a session, byte by byte so that nothing after the
// newline (the mux traffic) is consumed, and compares it with token in constant time.
func checkToken(r io.Reader, token string) error {
	limit := len(token) + 1
	line := make([]byte, 0, limit)
	b := make([]byte, 1)
	for {
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("channel: read token: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		if len(line) == limit {
			return errBadToken
		}
		line = append(line, b[0])
	}
	if subtle.ConstantTimeCompare(line, []byte(token)) != 1 {
		return errBadToken
	}
	return nil
}

// skipToPreamble reads, byte by byte so that nothing after it is consumed, up to and
// including mux.Preamble, and returns how many bytes preceded it: the unread tail of a host
// session whose hang-up this guest missed.
func skipToPreamble(r io.Reader) (int, error) {
	want := []byte(mux.Preamble)
	window := make([]byte, 0, len(want))
	b := make([]byte, 1)
	for read := 0; ; read++ {
		if _, err := io.ReadFull(r, b); err != nil {
			return 0, fmt.Errorf("channel: read preamble: %w", err)
		}
		if len(window) == len(want) {
			copy(window, window[1:])
			window = window[:len(want)-1]
		}
		window = append(window, b[0])
		if bytes.Equal(window, want) {
			return read + 1 - len(want), nil
		}
	}
}
