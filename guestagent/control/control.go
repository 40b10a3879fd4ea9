// Package control serves the guest agent's control service (api.ServiceControl): HTTP/1.1
// on a listener the transport hands it. It answers info, streams events, sets the clock and
// starts a clean shutdown; the work itself is done by the interfaces it is given, so the
// handlers run in tests without a VM.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// State is what the control service reports from.
type State interface {
	Info() api.Info
	Subscribe() (past []api.Event, live <-chan api.Event, cancel func())
}

// Shutdowner stops the engine, syncs, unmounts and powers off. Shutdown is called once, in
// its own goroutine, after the 202 answer has been written.
type Shutdowner interface {
	Shutdown(ctx context.Context)
}

// ShutdownFunc adapts a function to Shutdowner.
type ShutdownFunc func(ctx context.Context)

// Shutdown calls f.
func (f ShutdownFunc) Shutdown(ctx context.Context) { f(ctx) }

// Service is the control service. Fields must be set before Serve.
type Service struct {
	State    State
	Shutdown Shutdowner
	// SetTime sets the guest's wall clock (clock_settime(CLOCK_REALTIME) in the guest).
	SetTime func(time.Time) error
	Log     *slog.Logger
}

// minTime rejects clocks that cannot be a real host's (zero, negative, before 2020).
var minTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Handler returns the HTTP handler.
func (s *Service) Handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathInfo, s.info)
	mux.HandleFunc("GET "+api.PathEvents, s.events)
	mux.HandleFunc("POST "+api.PathTime, s.time)
	mux.HandleFunc("POST "+api.PathShutdown, func(w http.ResponseWriter, r *http.Request) {
		s.shutdown(ctx, w, r)
	})
	return mux
}

// Serve answers requests on l until ctx ends.
func (s *Service) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(ctx),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve(l)
	if ctx.Err() != nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("control service: %w", err)
}

func (s *Service) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.State.Info())
}

func (s *Service) events(w http.ResponseWriter, r *http.Request) {
	past, live, cancel := s.State.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(e api.Event) bool {
		if err := enc.Encode(e); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	for _, e := range past {
		if !send(e) {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-live:
			if !ok || !send(e) {
				return
			}
		}
	}
}

func (s *Service) time(w http.ResponseWriter, r *http.Request) {
	var ts api.TimeSync
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&ts); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("time request: %w", err))
		return
	}
	t := time.Unix(0, ts.UnixNano)
	if t.Before(minTime) {
		httpError(w, http.StatusBadRequest, fmt.Errorf("time request: unix_nano %d is before %s", ts.UnixNano, minTime.Format(time.DateOnly)))
		return
	}
	if err := s.SetTime(t); err != nil {
		httpError(w, http.StatusInternalServerError, fmt.Errorf("set clock: %w", err))
		return
	}
	s.logger().Info("clock set by host", "time", t.UTC().Format(time.RFC3339Nano))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) shutdown(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	s.logger().Info("shutdown requested by host")
	w.WriteHeader(http.StatusAccepted)
	http.NewResponseController(w).Flush()
	// Detached from the request: the host may hang up as soon as it reads 202.
	go s.Shutdown.Shutdown(context.WithoutCancel(ctx))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
