package hostagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/machine-run/machine/hostagent/driver"
)

// StateDegraded is reported while the VM runs but its guest channel is down: the Docker
// socket and forwarded ports wait (their dials are bounded) until the driver redials.
const StateDegraded = "degraded"

// Channel events.
const (
	EventChannelDown = "channel-down" // the guest channel broke; Message says why
	EventChannelUp   = "channel-up"   // the guest channel is back after a break
)

// pathCutChannel breaks the guest channel's carrier; it is served only with
// Options.FaultInjection, for the fault suite.
const pathCutChannel = "/v1/debug/cut-channel"

// onChannel records a change of the guest channel reported by the driver.
func (a *Agent) onChannel(s driver.ChannelState) {
	a.mu.Lock()
	wasDown := !a.channelDownSince.IsZero()
	if s.Up {
		since := a.channelDownSince
		a.channelDownSince, a.channelErr = time.Time{}, ""
		a.mu.Unlock()
		if !wasDown {
			return
		}
		d := time.Since(since)
		a.emit(Event{Type: EventChannelUp, Message: fmt.Sprintf("guest channel restored after %.1fs", d.Seconds()), Seconds: d.Seconds()})
		// The guest may have been frozen or the host asleep: its clock is suspect.
		go a.pushTime("channel restored")
		return
	}
	why := "unknown"
	if s.Err != nil {
		why = s.Err.Error()
	}
	if !wasDown {
		a.channelDownSince = time.Now()
	}
	a.channelErr = why
	a.mu.Unlock()
	if !wasDown {
		a.emit(Event{Type: EventChannelDown, Message: "guest channel lost (" + why + "); reconnecting"})
	}
}

// shownState is the state Status reports: running turns degraded while the channel is down.
func (a *Agent) shownStateLocked() string {
	if a.state == StateRunning && a.channelErr != "" {
		return StateDegraded
	}
	return a.state
}

func (a *Agent) serveCutChannel(w http.ResponseWriter, r *http.Request) {
	cw, ok := a.drv.(driver.ChannelWatcher)
	if !ok {
		http.Error(w, "this driver's channel cannot be cut", http.StatusNotImplemented)
		return
	}
	if err := cw.CutChannel(); err != nil {
		code := http.StatusConflict
		if errors.Is(err, driver.ErrUnsupported) {
			code = http.StatusNotImplemented
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// CutChannel asks the host agent to break its guest channel (fault tests; the agent must run
// with MACHINE_FAULT_INJECTION=1).
func (c *Client) CutChannel(ctx context.Context) error {
	return c.post(ctx, pathCutChannel, http.StatusNoContent, "cut channel")
}
