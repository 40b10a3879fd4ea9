package hostagent

import (
	"bytes"
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// Event types the host agent writes. The CLI follows them to show progress; tests read them.
const (
	EventStarting  = "starting"   // the host agent runs; Message says which driver/accelerator
	EventVMStarted = "vm-started" // the hypervisor runs the VM
	EventVMState   = "vm-state"   // the hypervisor reported a state change; Message is the state
	EventPhase     = "phase"      // a guest boot phase; Phase is set
	EventReady     = "ready"      // Docker answers; Message says how to use it
	EventStopping  = "stopping"   // a stop began
	EventStopped   = "stopped"    // the VM is off; StopMethod says how
	EventError     = "error"      // something failed; Message says what and where to look
	EventTimeSync  = "time-sync"  // the guest clock was pushed out of turn; Message says why
	EventPaused    = "paused"     // auto-pause stopped the idle VM's CPUs; Message says after how long
	EventResumed   = "resumed"    // a connection resumed the paused VM; Message says how fast
)

// Stop methods, from the cleanest to the bluntest.
const (
	StopGuest = "guest" // the guest agent stopped the engine, synced, unmounted, powered off
	StopACPI  = "acpi"  // the guest reacted to the virtual power button
	StopKill  = "kill"  // the hypervisor was killed
	StopCrash = "crash" // the VM ended on its own (guest panic, hypervisor crash)
)

// Event is one line of events.jsonl and of the control API's event stream.
type Event struct {
	Time       time.Time  `json:"time"`
	Type       string     `json:"type"`
	Phase      *api.Phase `json:"phase,omitempty"`
	Message    string     `json:"message,omitempty"`
	StopMethod string     `json:"stop_method,omitempty"`
	// Seconds is how long the condition an event ends lasted (channel-up: the outage).
	Seconds float64 `json:"seconds,omitempty"`
}

// eventLog appends events to a JSON-lines file and fans them out to live subscribers.
type eventLog struct {
	mu   sync.Mutex
	f    *os.File
	past []Event
	subs map[chan Event]struct{}
	done bool
}

func newEventLog(path string) (*eventLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &eventLog{f: f, subs: map[chan Event]struct{}{}}, nil
}

func (l *eventLog) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b, _ := json.Marshal(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Write(append(b, '\n'))
	l.past = append(l.past, e)
	for ch := range l.subs {
		select {
		case ch <- e:
		default: // a subscriber that cannot keep up loses its stream, never blocks the agent
			delete(l.subs, ch)
			close(ch)
		}
	}
}

// subscribe returns the events so far and a channel of later ones, closed when the agent ends.
func (l *eventLog) subscribe() ([]Event, <-chan Event, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan Event, 256)
	past := append([]Event(nil), l.past...)
	if l.done {
		close(ch)
		return past, ch, func() {}
	}
	l.subs[ch] = struct{}{}
	return past, ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
	}
}

func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	for ch := range l.subs {
		close(ch)
	}
	l.subs = nil
	l.f.Close()
}

// LastError returns the message of the last error event of the most recent run recorded in
// the events file at path, or "" if that run reached ready after it (or there is none): what
// `status` shows for a stopped machine whose start failed.
func LastError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	msg := ""
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e Event
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		switch e.Type {
		case EventStarting, EventReady:
			msg = ""
		case EventError:
			msg = e.Message
		}
	}
	return msg
}
