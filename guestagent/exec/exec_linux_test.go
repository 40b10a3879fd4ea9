package exec

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/reaper"
)

// testReaper is the one reaper of the test process: two would steal each other's children.
var testReaper = reaper.New()

func TestMain(m *testing.M) {
	go testReaper.Watch(context.Background())
	os.Exit(m.Run())
}

// dial serves the exec service on a unix socket and opens one stream with req.
func dial(t *testing.T, req api.ExecRequest) net.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "exec.sock"))
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Reaper: testReaper, Home: t.TempDir()}
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, l) }()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c.SetDeadline(time.Now().Add(20 * time.Second))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
	return c
}

type result struct {
	stdout, stderr, errMsg string
	code                   int
	frames                 []byte
}

// collect reads frames until FrameExit and checks that the stream ends right after it.
func collect(t *testing.T, c net.Conn) result {
	t.Helper()
	var res result
	for {
		typ, p, err := api.ReadFrame(c)
		if err != nil {
			t.Fatalf("read frame: %v (so far %+v)", err, res)
		}
		res.frames = append(res.frames, typ)
		switch typ {
		case api.FrameStdout:
			res.stdout += string(p)
		case api.FrameStderr:
			res.stderr += string(p)
		case api.FrameError:
			res.errMsg = string(p)
		case api.FrameExit:
			code, err := api.ParseExit(p)
			if err != nil {
				t.Fatal(err)
			}
			res.code = code
			if _, _, err := api.ReadFrame(c); err != io.EOF {
				t.Fatalf("frame after exit: err = %v, want EOF", err)
			}
			return res
		default:
			t.Fatalf("unexpected frame type %d", typ)
		}
	}
}

func TestExitCodePassthrough(t *testing.T) {
	for script, want := range map[string]int{"exit 0": 0, "exit 7": 7, "kill -KILL $$": 137} {
		res := collect(t, dial(t, api.ExecRequest{Argv: []string{"sh", "-c", script}}))
		if res.code != want {
			t.Errorf("%q: exit %d, want %d", script, res.code, want)
		}
	}
}

func TestStdinEOF(t *testing.T) {
	c := dial(t, api.ExecRequest{Argv: []string{"cat"}})
	api.WriteFrame(c, api.FrameStdin, []byte("hello "))
	api.WriteFrame(c, api.FrameStdin, []byte("world"))
	api.WriteFrame(c, api.FrameStdinEOF, nil)
	res := collect(t, c)
	if res.stdout != "hello world" || res.code != 0 {
		t.Fatalf("cat: %+v", res)
	}
}

func TestStderrSeparateAndEnv(t *testing.T) {
	c := dial(t, api.ExecRequest{
		Argv: []string{"sh", "-c", `echo out:$FOO:$TERM; echo err >&2; pwd >&2`},
		Env:  []string{"FOO=bar"},
		Dir:  "/tmp",
	})
	res := collect(t, c)
	if res.stdout != "out:bar:\n" || res.stderr != "err\n/tmp\n" || res.code != 0 {
		t.Fatalf("result: %+v", res)
	}
}

func TestUnknownCommand(t *testing.T) {
	res := collect(t, dial(t, api.ExecRequest{Argv: []string{"no-such-command-xyz"}}))
	if res.code != 127 || !strings.Contains(res.errMsg, "no-such-command-xyz") || !strings.Contains(res.errMsg, "not found") {
		t.Fatalf("result: %+v", res)
	}
	if res.frames[len(res.frames)-1] != api.FrameExit || res.frames[0] != api.FrameError {
		t.Fatalf("frames %v: want error then exit", res.frames)
	}
}

func TestPTYOutputAndResize(t *testing.T) {
	c := dial(t, api.ExecRequest{
		Argv: []string{"sh", "-c", `stty size; [ -t 0 ] && echo term:$TERM; read x; stty size; echo bye >&2`},
		TTY:  true, Rows: 24, Cols: 80,
		Env: []string{"TERM=vt100"},
	})
	// Wait for the first size before resizing so the two answers are ordered.
	var seen string
	for !strings.Contains(seen, "term:vt100") {
		typ, p, err := api.ReadFrame(c)
		if err != nil {
			t.Fatalf("before resize: %v, output %q", err, seen)
		}
		if typ != api.FrameStdout {
			t.Fatalf("frame type %d on a PTY stream, want only stdout", typ)
		}
		seen += string(p)
	}
	if !strings.Contains(seen, "24 80") {
		t.Fatalf("initial size: %q", seen)
	}
	api.WriteFrame(c, api.FrameResize, api.ResizePayload(40, 100))
	api.WriteFrame(c, api.FrameStdin, []byte("go\n"))
	res := collect(t, c)
	if !strings.Contains(res.stdout, "40 100") || !strings.Contains(res.stdout, "bye") || res.stderr != "" || res.code != 0 {
		t.Fatalf("after resize: %+v", res)
	}
}
