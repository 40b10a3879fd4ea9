package guestexec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/machine-run/machine/guestagent/api"
)

// fakeGuest serves one exec stream: it echoes stdin to stdout upper-cased, writes "err" on
// stderr, records resizes, and exits with the code in argv[0].
func fakeGuest(t *testing.T, c net.Conn, resized chan<- Size) {
	defer c.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Error(err)
		return
	}
	var req api.ExecRequest
	json.Unmarshal(line, &req)
	if req.Argv[0] == "missing" {
		api.WriteFrame(c, api.FrameError, []byte("missing: not found"))
		api.WriteFrame(c, api.FrameExit, api.ExitPayload(127))
		return
	}
	var in bytes.Buffer
	for {
		typ, p, err := api.ReadFrame(br)
		if err != nil {
			t.Error(err)
			return
		}
		if typ == api.FrameStdin {
			in.Write(p)
		}
		if typ == api.FrameResize {
			r, cl, _ := api.ParseResize(p)
			resized <- Size{r, cl}
		}
		if typ == api.FrameStdinEOF {
			break
		}
	}
	api.WriteFrame(c, api.FrameStdout, []byte(strings.ToUpper(in.String())))
	api.WriteFrame(c, api.FrameStderr, []byte("err"))
	code := map[string]int{"ok": 0, "three": 3}[req.Argv[0]]
	api.WriteFrame(c, api.FrameExit, api.ExitPayload(code))
}

func TestRun(t *testing.T) {
	host, guest := net.Pipe()
	resized := make(chan Size, 1)
	go fakeGuest(t, guest, resized)
	var out, errb bytes.Buffer
	rs := make(chan Size, 1)
	rs <- Size{40, 120}
	pr, pw := io.Pipe()
	go func() {
		got := <-resized
		if got != (Size{40, 120}) {
			t.Errorf("resize %v", got)
		}
		pw.Write([]byte("hello"))
		pw.Close()
	}()
	code, err := Run(host, api.ExecRequest{Argv: []string{"three"}}, Options{Stdin: pr, Stdout: &out, Stderr: &errb, Resize: rs})
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 || out.String() != "HELLO" || errb.String() != "err" {
		t.Errorf("code %d stdout %q stderr %q", code, out.String(), errb.String())
	}
}

func TestRunNoStdin(t *testing.T) {
	host, guest := net.Pipe()
	go fakeGuest(t, guest, nil)
	var out bytes.Buffer
	code, err := Run(host, api.ExecRequest{Argv: []string{"ok"}}, Options{Stdout: &out, Stderr: io.Discard})
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v", code, err)
	}
}

func TestRunStartError(t *testing.T) {
	host, guest := net.Pipe()
	go fakeGuest(t, guest, nil)
	code, err := Run(host, api.ExecRequest{Argv: []string{"missing"}}, Options{Stdout: io.Discard, Stderr: io.Discard})
	var se *StartError
	if code != 127 || !errors.As(err, &se) || !strings.Contains(se.Msg, "not found") {
		t.Fatalf("code %d err %v", code, err)
	}
}

func TestRunGuestVanishes(t *testing.T) {
	host, guest := net.Pipe()
	go func() {
		bufio.NewReader(guest).ReadBytes('\n')
		guest.Close()
	}()
	_, err := Run(host, api.ExecRequest{Argv: []string{"x"}}, Options{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "exit status") {
		t.Fatalf("err %v", err)
	}
}
