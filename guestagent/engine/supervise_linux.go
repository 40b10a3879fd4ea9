package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machine-run/machine/guestagent/reaper"
)

// Supervised keeps one daemon running. Set the exported fields, then call Run once; Stop may
// be called from any goroutine.
type Supervised struct {
	Name string
	// Command returns a fresh command for each start. Files it opens for the command's
	// stdio (other than the agent's own) are closed once the child holds its copies.
	Command func() *exec.Cmd
	// Ready blocks until the daemon answers or ctx ends; nil means ready once started.
	Ready func(ctx context.Context) error
	// OnReady is called after each start whose Ready returned nil.
	OnReady func()
	Reaper  *reaper.Reaper
	Log     *slog.Logger

	MinBackoff time.Duration // first restart delay (default 500ms)
	MaxBackoff time.Duration // cap (default 30s)
	// StableAfter resets the backoff when a run lasted at least this long (default 60s).
	StableAfter time.Duration

	once    sync.Once
	mu      sync.Mutex
	stopCh  chan struct{}
	done    chan struct{}
	proc    *os.Process
	exited  chan struct{}
	starts  int
	stopped bool
	running bool
}

func (s *Supervised) init() {
	s.once.Do(func() {
		s.stopCh = make(chan struct{})
		s.done = make(chan struct{})
		if s.MinBackoff == 0 {
			s.MinBackoff = 500 * time.Millisecond
		}
		if s.MaxBackoff == 0 {
			s.MaxBackoff = 30 * time.Second
		}
		if s.StableAfter == 0 {
			s.StableAfter = time.Minute
		}
		if s.Log == nil {
			s.Log = slog.Default()
		}
	})
}

// Starts reports how many times the daemon was started.
func (s *Supervised) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// Run starts the daemon and restarts it whenever it exits, until Stop is called or ctx ends
// (which stops the daemon as Stop would, with a 10 s grace).
func (s *Supervised) Run(ctx context.Context) {
	s.init()
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	defer close(s.done)
	stopOnCtx := context.AfterFunc(ctx, func() { s.Stop(10 * time.Second) })
	defer stopOnCtx()
	backoff := s.MinBackoff
	for !s.stopping() {
		started := time.Now()
		status, err := s.start(ctx)
		if err != nil {
			s.Log.Error("engine: start failed", "daemon", s.Name, "err", err, "retry_in", backoff)
		} else {
			st := <-status
			s.mu.Lock()
			s.proc = nil
			close(s.exited)
			stopped := s.stopped
			s.mu.Unlock()
			if stopped {
				s.Log.Info("engine: stopped", "daemon", s.Name, "status", st.String())
				return
			}
			if time.Since(started) >= s.StableAfter {
				backoff = s.MinBackoff
			}
			s.Log.Warn("engine: daemon exited, restarting", "daemon", s.Name, "status", st.String(), "retry_in", backoff)
		}
		select {
		case <-s.stopCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.MaxBackoff)
	}
}

func (s *Supervised) start(ctx context.Context) (<-chan reaper.Status, error) {
	cmd := s.Command()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, fmt.Errorf("%s: stopping", s.Name)
	}
	status, err := s.Reaper.StartCmd(cmd)
	closeStdio(cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	s.starts++
	s.proc = cmd.Process
	s.exited = make(chan struct{})
	s.Log.Info("engine: started", "daemon", s.Name, "pid", cmd.Process.Pid, "start", s.starts)
	readyCtx, cancel := context.WithCancel(ctx)
	exited := s.exited
	go func() {
		defer cancel()
		go func() {
			select {
			case <-exited:
				cancel()
			case <-readyCtx.Done():
			}
		}()
		if s.Ready != nil {
			if err := s.Ready(readyCtx); err != nil {
				return
			}
		}
		s.Log.Info("engine: ready", "daemon", s.Name)
		if s.OnReady != nil {
			s.OnReady()
		}
	}()
	return status, nil
}

func (s *Supervised) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Stop sends SIGTERM, waits up to timeout for the daemon to exit, then kills it; it returns
// once Run has returned (or at once if Run never ran).
func (s *Supervised) Stop(timeout time.Duration) {
	s.init()
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stopCh)
	}
	proc, exited := s.proc, s.exited
	s.mu.Unlock()
	if proc != nil {
		proc.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(timeout):
			s.Log.Warn("engine: daemon did not stop in time, killing it", "daemon", s.Name, "timeout", timeout)
			proc.Signal(unix.SIGKILL)
			<-exited
		}
	}
	s.mu.Lock()
	ran := s.running
	s.mu.Unlock()
	if ran {
		<-s.done
	}
}

func closeStdio(cmd *exec.Cmd) {
	for _, f := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if f, ok := f.(*os.File); ok && f != os.Stdin && f != os.Stdout && f != os.Stderr {
			f.Close() // the same file may appear twice; a second Close only errors
		}
	}
}
