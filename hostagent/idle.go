package hostagent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
)

// StatePaused is shown by Status while an idle machine's vCPUs are paused.
const StatePaused = "paused"

// idler pauses the VM's vCPUs once nothing has used the machine for a while (no connection
// open through the agent: Docker API, forwarded port, shell; and no container running), and
// resumes them when the next connection is dialled, before the dial, so the connection does
// not notice. A nil *idler never pauses; neither does one whose idle time is 0 (auto-pause
// turned off, which `machine set` can change while the machine runs: setAfter).
type idler struct {
	p driver.Pauser
	// running counts the guest's running containers without counting as use.
	running func(ctx context.Context) (int, error)
	// ready reports whether the machine is ready (nothing is paused before that).
	ready func() bool
	// onPause and onResume report the changes (events, the clock push after a resume).
	onPause  func(idle time.Duration)
	onResume func(paused, took time.Duration)
	now      func() time.Time
	log      *slog.Logger

	mu       sync.Mutex
	after    time.Duration // 0: off
	paused   bool
	off      bool // stopping: never pause again
	active   int  // connections open
	last     time.Time
	pausedAt time.Time
}

// acquire counts one more connection, resuming the VM first if it is paused.
func (i *idler) acquire(ctx context.Context) error {
	if i == nil {
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.resumeLocked(ctx); err != nil {
		return err
	}
	i.active++
	i.last = i.now()
	return nil
}

// release ends a connection counted by acquire.
func (i *idler) release() {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.active--
	i.last = i.now()
	i.mu.Unlock()
}

// stop resumes a paused VM for good (a stop needs the guest running to shut it down).
func (i *idler) stop(ctx context.Context) error {
	if i == nil {
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.off = true
	return i.resumeLocked(ctx)
}

// idleTime is the idle time before a pause: 0 when off, -1 when the driver cannot pause.
func (i *idler) idleTime() time.Duration {
	if i == nil {
		return -1
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.after
}

func (i *idler) isPaused() bool {
	if i == nil {
		return false
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.paused
}

func (i *idler) resumeLocked(ctx context.Context) error {
	if !i.paused {
		return nil
	}
	began := i.now()
	if err := i.p.Resume(ctx); err != nil {
		return fmt.Errorf("resume the paused machine: %w", err)
	}
	i.paused = false
	if i.onResume != nil {
		i.onResume(began.Sub(i.pausedAt), i.now().Sub(began))
	}
	return nil
}

// check pauses the VM if it has been idle long enough; run calls it periodically.
func (i *idler) check(ctx context.Context) {
	i.mu.Lock()
	now := i.now()
	if i.active > 0 {
		i.last = now
	}
	skip := i.after == 0 || i.paused || i.off || i.active > 0 || now.Sub(i.last) < i.after || (i.ready != nil && !i.ready())
	i.mu.Unlock()
	if skip {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := i.running(qctx)
	cancel()
	i.mu.Lock()
	defer i.mu.Unlock()
	if err != nil || n > 0 {
		// Running containers keep the machine awake; so does an engine that does not answer
		// (pausing it would only hide the problem).
		if err != nil {
			i.log.Warn("auto-pause: cannot list running containers; staying awake", "err", err)
		}
		i.last = i.now()
		return
	}
	idle := i.now().Sub(i.last)
	if i.after == 0 || i.paused || i.off || i.active > 0 || idle < i.after {
		return // used, or turned off, while we asked
	}
	if err := i.p.Pause(ctx); err != nil {
		i.log.Warn("auto-pause failed; staying awake", "err", err)
		i.last = i.now()
		return
	}
	i.paused, i.pausedAt = true, i.now()
	if i.onPause != nil {
		i.onPause(idle)
	}
}

// setAfter changes the idle time before a pause; 0 turns auto-pause off and resumes a paused
// VM. The idle time counts again from now, so turning it on never pauses at once.
func (i *idler) setAfter(ctx context.Context, after time.Duration) error {
	if i == nil {
		return fmt.Errorf("auto-pause: %w: this machine's driver cannot pause its CPUs", driver.ErrUnsupported)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.after, i.last = after, i.now()
	if after == 0 {
		return i.resumeLocked(ctx)
	}
	return nil
}

// period is how often run checks: a quarter of the idle time, between 0.5 s and 15 s (15 s
// while auto-pause is off, to notice it being turned on).
func (i *idler) period() time.Duration {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.after == 0 {
		return 15 * time.Second
	}
	return min(max(i.after/4, 500*time.Millisecond), 15*time.Second)
}

// run checks every period until ctx ends.
func (i *idler) run(ctx context.Context) {
	t := time.NewTimer(i.period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			i.check(ctx)
			t.Reset(i.period())
		}
	}
}

// awakeDriver is the driver as the agent's connections see it: every stream dialled resumes
// a paused VM first and keeps the machine awake until it is closed.
type awakeDriver struct {
	driver.Driver
	idle *idler
}

func (d awakeDriver) DialGuest(ctx context.Context, service uint32) (net.Conn, error) {
	return d.idle.dial(ctx, func() (net.Conn, error) { return d.Driver.DialGuest(ctx, service) })
}

// dial resumes a paused VM, then dials; the connection keeps the machine awake until it is
// closed. A nil idler only dials.
func (i *idler) dial(ctx context.Context, dial func() (net.Conn, error)) (net.Conn, error) {
	if err := i.acquire(ctx); err != nil {
		return nil, err
	}
	c, err := dial()
	if err != nil {
		i.release()
		return nil, err
	}
	return &awakeConn{Conn: c, idle: i}, nil
}

// CutChannel keeps the fault endpoint working through the wrapper.
func (d awakeDriver) CutChannel() error {
	if cw, ok := d.Driver.(driver.ChannelWatcher); ok {
		return cw.CutChannel()
	}
	return fmt.Errorf("cut channel: %w", driver.ErrUnsupported)
}

func (d awakeDriver) WatchChannel(fn func(driver.ChannelState)) {
	if cw, ok := d.Driver.(driver.ChannelWatcher); ok {
		cw.WatchChannel(fn)
	}
}

// awakeConn releases its hold on the machine once, when closed; it keeps half-close.
type awakeConn struct {
	net.Conn
	idle *idler
	once sync.Once
}

func (c *awakeConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.idle.release)
	return err
}

func (c *awakeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("guest stream: %w: no half-close", driver.ErrUnsupported)
}

// newIdler makes the machine's idler, or nil when the driver cannot pause. Auto-pause off is
// an idler that never pauses, so that it can be turned on while the machine runs. raw is the
// driver itself: the idler's own Docker query must not count as use.
func (a *Agent) newIdler(raw driver.Driver) *idler {
	after := a.o.Config.AutoPauseIdle()
	p, ok := raw.(driver.Pauser)
	if !ok {
		return nil
	}
	docker := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return raw.DialGuest(ctx, api.ServiceDocker)
		},
		DisableKeepAlives: true,
	}}
	return &idler{
		p: p, after: after, now: time.Now, log: a.log, last: time.Now(),
		running: func(ctx context.Context) (int, error) { return runningContainers(ctx, docker) },
		ready: func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.ready
		},
		onPause: func(idle time.Duration) {
			a.emit(Event{Type: EventPaused, Message: fmt.Sprintf("paused after %s idle (no container running, no connection)", idle.Round(time.Second))})
		},
		onResume: func(paused, took time.Duration) {
			a.emit(Event{Type: EventResumed, Message: fmt.Sprintf("resumed in %s after %s paused", took.Round(time.Millisecond), paused.Round(time.Second))})
			// TCG follows host time while paused; vz and hardware-accelerated guests do not.
			go a.pushTime("resumed after a pause")
		},
	}
}

// runningContainers asks the engine how many containers run (GET /containers/json lists
// only running ones).
func runningContainers(ctx context.Context, c *http.Client) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/json", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("docker: list containers: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("docker: list containers: %s", resp.Status)
	}
	var list []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, fmt.Errorf("docker: list containers: %w", err)
	}
	return len(list), nil
}
