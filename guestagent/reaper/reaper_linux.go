package reaper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// outputGrace bounds how long Output reads after the process exited.
const outputGrace = 2 * time.Second

// Status is how a process ended.
type Status struct {
	Pid int
	// Code is the exit code, or 128+signal when a signal killed the process (the shell's rule).
	Code   int
	Signal syscall.Signal // 0 unless killed by a signal
}

func (s Status) String() string {
	if s.Signal != 0 {
		return "killed by " + unix.SignalName(s.Signal)
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

// Err is nil for exit status 0 and an error describing the status otherwise.
func (s Status) Err() error {
	if s.Code == 0 {
		return nil
	}
	return errors.New(s.String())
}

// StatusFrom converts a raw wait status.
func StatusFrom(pid int, ws unix.WaitStatus) Status {
	st := Status{Pid: pid}
	switch {
	case ws.Signaled():
		st.Signal = syscall.Signal(ws.Signal())
		st.Code = 128 + int(ws.Signal())
	default:
		st.Code = ws.ExitStatus()
	}
	return st
}

// Reaper dispatches exit statuses. The zero value is not usable: call New.
type Reaper struct {
	// Orphan, when set, is told about reaped processes nobody started through the Reaper.
	Orphan func(Status)

	// mu is held across starting a process and registering its waiter, and across each
	// reaping pass, so a child that exits at once is never reaped before it is registered.
	mu      sync.Mutex
	waiters map[int]chan Status
}

// New returns a Reaper. Call Watch (or Reap after each SIGCHLD) to make it reap.
func New() *Reaper {
	return &Reaper{waiters: map[int]chan Status{}}
}

// Start runs start (which must start exactly one child and return its pid) and returns a
// channel that receives the child's status once. Use it for starters other than exec.Cmd,
// such as a PTY helper; StartCmd covers exec.Cmd.
func (r *Reaper) Start(start func() (pid int, err error)) (<-chan Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return nil, err
	}
	ch := make(chan Status, 1)
	r.waiters[pid] = ch
	return ch, nil
}

// StartCmd starts cmd and returns a channel that receives its status. cmd's Stdin, Stdout and
// Stderr must be nil or *os.File: other types need cmd.Wait to finish copying, which the
// reaper forbids. cmd.Process stays valid for signals: on Linux it holds a pidfd, so a
// signal after the exit fails instead of reaching a recycled pid; the handle is freed with
// cmd.
func (r *Reaper) StartCmd(cmd *exec.Cmd) (<-chan Status, error) {
	for _, s := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		switch s.(type) {
		case nil, *os.File:
		default:
			return nil, fmt.Errorf("start %s: stdio must be nil or *os.File under the reaper, not %T", cmd.Path, s)
		}
	}
	ch, err := r.Start(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	if err != nil {
		return nil, err
	}
	// os.Process holds a pidfd until Wait or Release; the reaper waits with wait4, so release
	// it once the process has exited, or every command leaks a descriptor. Until then callers
	// may still signal the process.
	out := make(chan Status, 1)
	go func() {
		st := <-ch
		cmd.Process.Release()
		out <- st
	}()
	return out, nil
}

// Reap collects every child that has exited, without blocking, and dispatches the statuses.
func (r *Reaper) Reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none exited yet
		}
		if ws.Stopped() || ws.Continued() {
			continue
		}
		st := StatusFrom(pid, ws)
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- st
		} else if r.Orphan != nil {
			r.Orphan(st)
		}
	}
}

// Watch reaps on every SIGCHLD until ctx ends.
func (r *Reaper) Watch(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGCHLD)
	defer signal.Stop(sig)
	r.Reap() // children that exited before Notify took effect
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			r.Reap()
		}
	}
}

// Run starts cmd and waits for it. When ctx ends first the process is killed and its status
// still collected.
func (r *Reaper) Run(ctx context.Context, cmd *exec.Cmd) (Status, error) {
	ch, err := r.StartCmd(cmd)
	if err != nil {
		return Status{}, err
	}
	return wait(ctx, cmd, ch)
}

func wait(ctx context.Context, cmd *exec.Cmd, ch <-chan Status) (Status, error) {
	select {
	case st := <-ch:
		return st, nil
	case <-ctx.Done():
		cmd.Process.Signal(unix.SIGKILL)
		st := <-ch
		return st, ctx.Err()
	}
}

// Output runs cmd with stdout and stderr captured together and returns them. The error is
// non-nil when the command could not start, ctx ended, or it exited non-zero; it then names
// the command and includes the output.
func (r *Reaper) Output(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	out, st, err := r.OutputStatus(ctx, cmd)
	if err != nil {
		return out, err
	}
	if err := st.Err(); err != nil {
		return out, fmt.Errorf("%s: %w: %s", cmd, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// OutputStatus is Output for commands whose exit code means something (e2fsck): a non-zero
// exit is returned in the Status, not as an error.
func (r *Reaper) OutputStatus(ctx context.Context, cmd *exec.Cmd) ([]byte, Status, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, Status{}, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	ch, err := r.StartCmd(cmd)
	pw.Close()
	if err != nil {
		return nil, Status{}, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	var buf bytes.Buffer
	readDone := make(chan struct{})
	go func() { io.Copy(&buf, pr); close(readDone) }()
	st, werr := wait(ctx, cmd, ch)
	// Reading ends when every writer is gone; a daemonising grandchild could hold the pipe
	// open forever, so the read gets a grace period after the process itself exited.
	select {
	case <-readDone:
	case <-time.After(outputGrace):
		pr.Close()
		<-readDone
	}
	out := buf.Bytes()
	if werr != nil {
		return out, st, fmt.Errorf("%s: %w", cmd, werr)
	}
	return out, st, nil
}
