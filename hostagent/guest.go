package hostagent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/machine-run/machine/internal/logrotate"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/store"
)

// guestClient speaks the guest agent's control service (HTTP over a guest stream).
type guestClient struct {
	http *http.Client
}

// Dialer opens streams to guest services; driver.Driver satisfies it.
type Dialer interface {
	DialGuest(ctx context.Context, service uint32) (net.Conn, error)
}

func newGuestClient(d Dialer) *guestClient {
	return &guestClient{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialGuest(ctx, api.ServiceControl)
		},
		// One stream per request: streams are cheap and a stale idle one cannot wedge a call.
		DisableKeepAlives: true,
	}}}
}

func (g *guestClient) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://guest"+path, rd)
	if err != nil {
		return err
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("guest agent %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("guest agent %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (g *guestClient) info(ctx context.Context) (*api.Info, error) {
	var info api.Info
	return &info, g.do(ctx, http.MethodGet, api.PathInfo, nil, &info)
}

func (g *guestClient) shutdown(ctx context.Context) error {
	return g.do(ctx, http.MethodPost, api.PathShutdown, nil, nil)
}

func (g *guestClient) syncTime(ctx context.Context) error {
	return g.do(ctx, http.MethodPost, api.PathTime, api.TimeSync{UnixNano: time.Now().UnixNano()}, nil)
}

// events streams the guest's events to fn until the stream ends or ctx is done.
func (g *guestClient) events(ctx context.Context, fn func(api.Event)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://guest"+api.PathEvents, nil)
	if err != nil {
		return err
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("guest agent events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("guest agent events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("guest agent events: bad line %q: %w", sc.Bytes(), err)
		}
		fn(e)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("guest agent events: %w", err)
	}
	return io.ErrUnexpectedEOF
}

// followGuest relays the guest's boot phases and readiness into host events, pushes the
// host's clock, and brings up the Docker socket once the engine answers. It reconnects if the
// stream breaks, until ctx ends.
func (a *Agent) followGuest(ctx context.Context) {
	seen := map[string]bool{}
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := a.guest.events(ctx, func(e api.Event) {
			delay = 100 * time.Millisecond
			a.onGuestEvent(ctx, e, seen)
		})
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("guest event stream ended; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (a *Agent) onGuestEvent(ctx context.Context, e api.Event, seen map[string]bool) {
	switch e.Type {
	case api.EventPhase:
		if e.Phase == nil || seen[e.Phase.Name] {
			return
		}
		seen[e.Phase.Name] = true
		a.mu.Lock()
		a.phases = append(a.phases, *e.Phase)
		a.mu.Unlock()
		a.emit(Event{Type: EventPhase, Phase: e.Phase})
		if e.Phase.Name == api.PhaseAgent {
			go a.keepTime(ctx)
		}
	case api.EventReady:
		if seen["ready"] {
			return
		}
		seen["ready"] = true
		if err := a.onReady(ctx); err != nil {
			a.emit(Event{Type: EventError, Message: err.Error()})
			return
		}
		a.mu.Lock()
		a.ready = true
		a.state = StateRunning
		a.mu.Unlock()
		a.commitUpgrade()
		a.emit(Event{Type: EventReady, Message: "Docker is ready"})
	case api.EventError:
		a.mu.Lock()
		a.lastErr = e.Message
		ready, phase := a.ready, api.PhaseInit
		if n := len(a.phases); n > 0 {
			phase = a.phases[n-1].Name
		}
		a.mu.Unlock()
		a.emit(Event{Type: EventError, Message: "guest: " + e.Message + " (see " + a.o.Machine.SerialLog() + ")"})
		if a.firstBoot() {
			a.failFirstBoot("guest: " + e.Message)
		} else if !ready {
			select {
			case a.bootErr <- fmt.Errorf("machine %q: boot failed after phase %s: guest: %s; the VM was stopped (see %s)", a.o.Machine.Name, phase, e.Message, a.o.Machine.SerialLog()):
			default:
			}
		}
	case api.EventPorts:
		a.onPorts(ctx, e.Ports)
	}
}

// keepTime pushes the host clock now, every minute, and at once when the host's clocks show
// a gap: a suspended laptop or a paused VM leaves the guest clock behind, which breaks TLS and
// build caches, and waiting for the next minute is too long.
func (a *Agent) keepTime(ctx context.Context) {
	const tick = 2 * time.Second
	t := time.NewTicker(tick)
	defer t.Stop()
	a.pushTime("")
	last, lastPush := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.idle.isPaused() {
			// Nothing to push to; the resume pushes the clock.
			last = time.Now()
			continue
		}
		now := time.Now()
		if why := clockGap(now.Round(0).Sub(last.Round(0)), now.Sub(last), tick); why != "" {
			a.pushTime(why)
			lastPush = now
		} else if now.Sub(lastPush) >= time.Minute {
			a.pushTime("")
			lastPush = now
		}
		// A push can take a while on a slow channel; the next gap counts from after it.
		last = time.Now()
	}
}

// clockGap says why the clock must be pushed at once, given how far the host's wall and
// monotonic clocks moved over one tick, or "". Wall time running ahead of monotonic time
// means the host slept (monotonic clocks stop in sleep) or its clock was set; a tick far
// later than asked means this agent was frozen.
func clockGap(wall, mono, tick time.Duration) string {
	if d := wall - mono; d > time.Second || d < -time.Second {
		return fmt.Sprintf("host wall clock moved %v against its monotonic clock (sleep or a clock change)", d.Round(time.Millisecond))
	}
	if mono > tick+3*time.Second {
		return fmt.Sprintf("host agent stood still for %v", mono.Round(time.Millisecond))
	}
	return ""
}

// pushTime sets the guest clock to the host's; why, when set, names the gap that made it
// urgent and is recorded as an event.
func (a *Agent) pushTime(why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.guest.syncTime(ctx); err != nil {
		a.log.Warn("time sync failed", "err", err, "why", why)
		return
	}
	if why != "" {
		a.emit(Event{Type: EventTimeSync, Message: "guest clock set to the host's: " + why})
	}
}

// crashMessage explains a VM that ended without being asked to.
func crashMessage(m *store.Machine, err error) string {
	tail := readTail(m.SerialLog(), 64<<10)
	why := "the VM exited unexpectedly"
	switch {
	case strings.Contains(tail, "softlockup: hung tasks"):
		// Only a kernel booted with softlockup_panic (older images) panics on a lockup; a
		// lockup warning alone (a VM that was frozen) is not a crash reason.
		why = "the guest kernel locked up (soft lockup) and panicked"
	case strings.Contains(tail, "Kernel panic"):
		why = "the guest kernel panicked"
	}
	if err != nil {
		why += ": " + err.Error()
	}
	// The next start rotates this boot's console to the first earlier generation: name both,
	// so the hint still leads to the evidence after the restart it suggests.
	return fmt.Sprintf("machine %q: %s; the console of that boot is %s (after the next start: %s, or `machine logs %s --boot -1`); run `machine start %s` to boot it again",
		m.Name, why, m.SerialLog(), logrotate.Generation(m.SerialLog(), 1), m.Name, m.Name)
}

func readTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
