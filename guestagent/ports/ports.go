// Package ports discovers the ports the container engine publishes inside the guest and
// reports the full current set to the agent's state, which sends it to the host as an
// api.EventPorts event. It follows Docker's event stream over the engine's unix socket and,
// on every container event that can change published ports, re-reads the container list:
// no polling, so a port is reported as soon as Docker says the container started.
//
// It speaks plain HTTP over a unix socket and builds on every system; tests use a fake
// Docker API on a socket in a temp dir.
package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// DefaultSocket is where dockerd listens inside the guest.
const DefaultSocket = "/var/run/docker.sock"

// Reporter receives the full set of published ports whenever it changes (state.State
// implements it).
type Reporter interface {
	Ports([]api.Port)
}

// Watcher follows the engine and reports published ports. Set Report; the other fields have
// defaults. Run it once dockerd answers; it survives dockerd restarts on its own.
type Watcher struct {
	// Socket is dockerd's unix socket; empty means DefaultSocket.
	Socket string
	// Report receives every changed set, the first set always.
	Report Reporter
	// Log receives reconnects and errors; nil discards them.
	Log *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnects (defaults 100 ms, 2 s).
	MinBackoff, MaxBackoff time.Duration

	client   *http.Client
	last     []api.Port
	reported bool
}

// Run follows Docker until ctx ends, reconnecting with backoff when the event stream or a
// container listing fails (dockerd restarted by the supervisor), and resyncing each time.
// It returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Report == nil {
		return errors.New("ports watcher: no Report")
	}
	socket := w.Socket
	if socket == "" {
		socket = DefaultSocket
	}
	w.client = newClient(socket)
	defer w.client.CloseIdleConnections()
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	minB, maxB := w.MinBackoff, w.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(2*time.Second, minB)
	}
	delay := minB
	for {
		synced, err := w.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if synced {
			delay = minB
		}
		log.Warn("ports: docker events interrupted; reconnecting", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, maxB)
	}
}

// session subscribes to Docker's events, then lists containers, then re-lists after each
// relevant event until the stream or a listing fails. Subscribing first means no change can
// fall between the listing and the stream. synced tells whether one listing succeeded.
func (w *Watcher) session(ctx context.Context) (synced bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := subscribe(ctx, w.client, time.Now())
	if err != nil {
		return false, err
	}
	defer body.Close()

	// dirty holds at most one pending recompute: a lone event is handled at once, a burst
	// that arrives during a listing costs one more listing, not one per event.
	dirty := make(chan struct{}, 1)
	dirty <- struct{}{} // the initial full read
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- readEvents(body, func() {
			select {
			case dirty <- struct{}{}:
			default:
			}
		})
	}()
	defer func() {
		if streamErr != nil {
			cancel() // unblocks the reader; body.Close runs after it has returned
			<-streamErr
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return synced, ctx.Err()
		case err := <-streamErr:
			streamErr = nil
			return synced, fmt.Errorf("docker event stream: %w", err)
		case <-dirty:
			if err := w.sync(ctx); err != nil {
				return synced, err
			}
			synced = true
		}
	}
}

// sync lists containers and reports the set if it differs from the last one reported.
func (w *Watcher) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	cs, err := listContainers(ctx, w.client)
	if err != nil {
		return err
	}
	set := Collect(cs)
	if w.reported && Equal(set, w.last) {
		return nil
	}
	w.last, w.reported = set, true
	w.Report.Ports(set)
	return nil
}
