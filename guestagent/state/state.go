// Package state holds what the guest agent knows about this boot: the phases reached with
// their times, readiness, a fatal error, versions and the data disk. It is the one source the
// control service answers from, and it fans events out to live subscribers without ever
// letting a slow subscriber block boot.
package state

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// subscriberBuffer is how many events a subscriber may lag behind before it is dropped.
const subscriberBuffer = 256

// State is safe for concurrent use. The zero value is not usable: call New.
type State struct {
	// Uptime returns seconds since the kernel started (CLOCK_BOOTTIME in the guest).
	Uptime func() float64
	// Now stamps events.
	Now func() time.Time
	// MeminfoPath is read for the memory figures in Info; empty skips it.
	MeminfoPath string

	mu       sync.Mutex
	info     api.Info
	history  []api.Event
	subs     map[chan api.Event]struct{}
	readyCh  chan struct{}
	portsEvt *api.Event
}

// New returns an empty State whose clock is uptime.
func New(uptime func() float64) *State {
	return &State{
		Uptime:      uptime,
		Now:         time.Now,
		MeminfoPath: "/proc/meminfo",
		info:        api.Info{Arch: runtime.GOARCH, Phases: []api.Phase{}},
		subs:        map[chan api.Event]struct{}{},
		readyCh:     make(chan struct{}),
	}
}

// Phase records that boot reached name now.
func (s *State) Phase(name, detail string) api.Phase {
	p := api.Phase{Name: name, Seconds: s.Uptime(), Detail: detail}
	s.AddPhase(p)
	return p
}

// AddPhase records a phase measured elsewhere (stage 1 passes its phases to stage 2).
func (s *State) AddPhase(p api.Phase) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info.Phases = append(s.info.Phases, p)
	s.emitLocked(api.Event{Type: api.EventPhase, Phase: &p}, true)
}

// Ready records that the engine answers. Only the first call emits an event.
func (s *State) Ready() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.info.Ready {
		return
	}
	s.info.Ready = true
	close(s.readyCh)
	s.emitLocked(api.Event{Type: api.EventReady}, true)
}

// ReadyChan is closed once Ready was called.
func (s *State) ReadyChan() <-chan struct{} { return s.readyCh }

// Fail records a fatal boot error.
func (s *State) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info.Error = err.Error()
	s.emitLocked(api.Event{Type: api.EventError, Message: err.Error()}, true)
}

// Ports publishes the full current set of published ports. Only the latest set is replayed
// to new subscribers.
func (s *State) Ports(ports []api.Port) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := api.Event{Type: api.EventPorts, Ports: ports, Time: s.Now()}
	s.portsEvt = &e
	s.emitLocked(e, false)
}

// SetVersions replaces the version information.
func (s *State) SetVersions(v api.Versions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info.Versions = v
}

// UpdateVersions lets f edit the version information in place.
func (s *State) UpdateVersions(f func(*api.Versions)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.info.Versions)
}

// SetDataDisk records the data disk as this boot found it.
func (s *State) SetDataDisk(d api.DataDisk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info.DataDisk = d
}

// Info returns a snapshot, with memory use read now.
func (s *State) Info() api.Info {
	s.mu.Lock()
	info := s.info
	info.Phases = append([]api.Phase(nil), s.info.Phases...)
	s.mu.Unlock()
	if s.MeminfoPath != "" {
		if used, unavail, err := Memory(s.MeminfoPath); err == nil {
			info.MemoryUsedKiB, info.MemoryUnavailableKiB = used, unavail
		}
	}
	return info
}

// Subscribe returns the events so far (phases, ready, error, latest ports) and a channel of
// later events. The channel is closed when cancel is called or when the subscriber falls
// more than subscriberBuffer events behind.
func (s *State) Subscribe() (past []api.Event, live <-chan api.Event, cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	past = append([]api.Event(nil), s.history...)
	if s.portsEvt != nil {
		past = append(past, *s.portsEvt)
	}
	ch := make(chan api.Event, subscriberBuffer)
	s.subs[ch] = struct{}{}
	return past, ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	}
}

func (s *State) emitLocked(e api.Event, keep bool) {
	if e.Time.IsZero() {
		e.Time = s.Now()
	}
	if keep {
		s.history = append(s.history, e)
	}
	for ch := range s.subs {
		select {
		case ch <- e:
		default:
			delete(s.subs, ch)
			close(ch)
		}
	}
}

// Memory reads a /proc/meminfo file: used is what free(1) calls used (MemTotal - MemFree -
// Buffers - Cached - SReclaimable: memory nothing can reclaim), unavailable is MemTotal -
// MemAvailable (the kernel's more cautious estimate, which counts part of the page cache).
func Memory(path string) (used, unavailable uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("meminfo: %w", err)
	}
	v := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		if n, err := strconv.ParseUint(string(f[1]), 10, 64); err == nil {
			v[strings.TrimSuffix(string(f[0]), ":")] = n
		}
	}
	total, avail := v["MemTotal"], v["MemAvailable"]
	free := v["MemFree"] + v["Buffers"] + v["Cached"] + v["SReclaimable"]
	if total == 0 || avail > total || free > total {
		return 0, 0, fmt.Errorf("meminfo %s: no usable MemTotal/MemAvailable/MemFree", path)
	}
	return total - free, total - avail, nil
}
