package transport

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
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
