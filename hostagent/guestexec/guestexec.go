// Package guestexec is the host end of the guest's exec service: it runs a command in the
// guest over one stream, relaying stdin, stdout, stderr and terminal resizes, and returns the
// command's exit status.
package guestexec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/machine-run/machine/guestagent/api"
)

// Size is a terminal size.
type Size struct{ Rows, Cols uint16 }

// Options are a command's streams. Stdin may be nil (the command gets EOF at once).
type Options struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize delivers terminal size changes for TTY commands; nil when there are none.
	Resize <-chan Size
}

// Run sends req over conn (a fresh api.ServiceExec stream), relays the streams and returns
// the command's exit status. It closes conn.
func Run(conn net.Conn, req api.ExecRequest, o Options) (int, error) {
	defer conn.Close()
	b, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return 0, fmt.Errorf("exec: send request: %w", err)
	}
	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return api.WriteFrame(conn, typ, p)
	}
	done := make(chan struct{})
	defer close(done)
	stdin := o.Stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	// Never write from this goroutine: it must keep reading, or a guest blocked writing
	// output and a host blocked writing input would wait on each other.
	go pumpStdin(stdin, send, done)
	if o.Resize != nil {
		go func() {
			for {
				select {
				case s := <-o.Resize:
					send(api.FrameResize, api.ResizePayload(s.Rows, s.Cols))
				case <-done:
					return
				}
			}
		}()
	}
	var startErr string
	for {
		typ, p, err := api.ReadFrame(conn)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("exec: the guest closed the stream before the command's exit status: %w", err)
		}
		switch typ {
		case api.FrameStdout:
			o.Stdout.Write(p)
		case api.FrameStderr:
			o.Stderr.Write(p)
		case api.FrameError:
			startErr = string(p)
		case api.FrameExit:
			code, err := api.ParseExit(p)
			if err != nil {
				return 0, err
			}
			if startErr != "" {
				return code, &StartError{Msg: startErr, Code: code}
			}
			return code, nil
		}
	}
}

// StartError is returned when the guest could not start the command.
type StartError struct {
	Msg  string
	Code int
}

func (e *StartError) Error() string { return e.Msg }

// pumpStdin copies stdin into frames, then signals EOF. It exits when stdin ends or the
// command has finished (done); a blocked terminal read is abandoned with the process.
func pumpStdin(r io.Reader, send func(byte, []byte) error, done <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			select {
			case <-done:
				return
			default:
			}
			if send(api.FrameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			send(api.FrameStdinEOF, nil)
			return
		}
	}
}
