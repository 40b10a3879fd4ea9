package exec

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/reaper"
	"github.com/machine-run/machine/internal/acceptloop"
)

// DefaultPath is the PATH commands get unless the request sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxRequest bounds the opening JSON line.
const maxRequest = 1 << 20

// Service runs commands for the host.
type Service struct {
	Reaper *reaper.Reaper
	Log    *slog.Logger
	// Home is the HOME commands get (default /root).
	Home string
}

// Serve handles every stream accepted on l until ctx ends or l is closed; ctx ending also
// closes the streams in flight.
func (s *Service) Serve(ctx context.Context, l net.Listener) error {
	err := acceptloop.Run(ctx, l, s.logger(), func(c net.Conn) {
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		if err := s.Handle(ctx, c); err != nil {
			s.logger().Warn("exec stream", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("exec service: %w", err)
	}
	return nil
}

func (s *Service) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// frameWriter serialises frames from the output goroutines.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) write(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.WriteFrame(f.w, typ, p)
}

// Handle runs one exec stream to its end. The caller closes conn.
func (s *Service) Handle(ctx context.Context, conn net.Conn) error {
	br := bufio.NewReader(io.LimitReader(conn, maxRequest))
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("exec request: %w", err)
	}
	var req api.ExecRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return fmt.Errorf("exec request: %w", err)
	}
	// Frames may already sit in br's buffer behind the request line.
	in := io.MultiReader(br, conn)
	out := &frameWriter{w: conn}
	if len(req.Argv) == 0 {
		return fail(out, 127, "exec: empty argv")
	}
	cmd, err := s.command(req)
	if err != nil {
		return fail(out, 127, err.Error())
	}
	if req.TTY {
		return s.runPTY(ctx, cmd, req, in, out)
	}
	return s.runPipes(ctx, cmd, in, out)
}

func fail(out *frameWriter, code int, msg string) error {
	out.write(api.FrameError, []byte(msg))
	return out.write(api.FrameExit, api.ExitPayload(code))
}

func (s *Service) command(req api.ExecRequest) (*osexec.Cmd, error) {
	home := s.Home
	if home == "" {
		home = "/root"
	}
	env := []string{"PATH=" + DefaultPath, "HOME=" + home}
	if req.TTY {
		env = append(env, "TERM=xterm")
	}
	env = append(env, req.Env...) // later entries win in exec.Cmd
	path, err := lookPath(req.Argv[0], env)
	if err != nil {
		return nil, err
	}
	cmd := &osexec.Cmd{Path: path, Args: req.Argv, Env: env, Dir: req.Dir}
	if cmd.Dir == "" {
		cmd.Dir = "/"
		if st, err := os.Stat(home); err == nil && st.IsDir() {
			cmd.Dir = home
		}
	}
	return cmd, nil
}

// lookPath resolves argv[0] against the PATH the command will get, not the agent's own
// (exec.LookPath reads the process environment).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if isExecutable(name) {
			return name, nil
		}
		return "", fmt.Errorf("exec: %q: no such executable file", name)
	}
	path := DefaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		if p := dir + "/" + name; isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in PATH %s", name, path)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

func (s *Service) runPipes(ctx context.Context, cmd *osexec.Cmd, in io.Reader, out *frameWriter) error {
	var closers []*os.File
	closeAll := func() {
		for _, f := range closers {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			closers = append(closers, r, w)
		}
		return
	}
	stdinR, stdinW, err1 := pipe()
	stdoutR, stdoutW, err2 := pipe()
	stderrR, stderrW, err3 := pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		closeAll()
		return fail(out, 126, fmt.Sprintf("exec: pipes: %v", err))
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, stderrW
	status, err := s.Reaper.StartCmd(cmd)
	// The child holds its own copies; ours must go so EOF reaches the readers.
	stdinR.Close()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdinW.Close()
		stdoutR.Close()
		stderrR.Close()
		return fail(out, startCode(err), fmt.Sprintf("exec %s: %v", cmd.Args[0], err))
	}
	var outputs sync.WaitGroup
	pump := func(r *os.File, typ byte) {
		defer outputs.Done()
		defer r.Close()
		copyFrames(out, r, typ)
	}
	outputs.Add(2)
	go pump(stdoutR, api.FrameStdout)
	go pump(stderrR, api.FrameStderr)
	go readInput(in, stdinW, nil)

	st := <-status
	outputs.Wait()
	stdinW.Close()
	return out.write(api.FrameExit, api.ExitPayload(st.Code))
}

func (s *Service) runPTY(ctx context.Context, cmd *osexec.Cmd, req api.ExecRequest, in io.Reader, out *frameWriter) error {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return fail(out, 126, fmt.Sprintf("exec: pty: %v", err))
	}
	defer ptmx.Close()
	if req.Rows > 0 && req.Cols > 0 {
		pty.Setsize(ptmx, &pty.Winsize{Rows: req.Rows, Cols: req.Cols})
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	status, err := s.Reaper.StartCmd(cmd)
	tty.Close()
	if err != nil {
		return fail(out, startCode(err), fmt.Sprintf("exec %s: %v", cmd.Args[0], err))
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		copyFrames(out, ptmx, api.FrameStdout) // ends with EIO once every slave fd is closed
	}()
	go readInput(in, ptmx, func(rows, cols uint16) {
		pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols})
	})
	st := <-status
	<-outDone
	return out.write(api.FrameExit, api.ExitPayload(st.Code))
}

// copyFrames sends everything read from r as frames of typ until r fails or ends.
func copyFrames(out *frameWriter, r io.Reader, typ byte) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if out.write(typ, buf[:n]) != nil {
				// The host is gone; keep draining so the command is not blocked on a full pipe.
				io.Copy(io.Discard, r)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// readInput applies host frames: stdin bytes, stdin EOF and resizes. When the host's side of
// the stream ends, stdin is closed (non-TTY) so the command sees EOF.
func readInput(in io.Reader, stdin *os.File, resize func(rows, cols uint16)) {
	for {
		typ, p, err := api.ReadFrame(in)
		if err != nil {
			if resize == nil {
				stdin.Close()
			}
			return
		}
		switch typ {
		case api.FrameStdin:
			if _, err := stdin.Write(p); err != nil && resize == nil {
				stdin.Close()
			}
		case api.FrameStdinEOF:
			if resize == nil {
				stdin.Close()
			} else {
				stdin.Write([]byte{4}) // ^D: the terminal's end of input
			}
		case api.FrameResize:
			if rows, cols, err := api.ParseResize(p); err == nil && resize != nil {
				resize(rows, cols)
			}
		}
	}
}

// startCode maps a start failure to the shell's codes: 127 not found, 126 not executable.
func startCode(err error) int {
	if errors.Is(err, os.ErrNotExist) {
		return 127
	}
	return 126
}
