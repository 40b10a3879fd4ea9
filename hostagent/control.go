package hostagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/inetaf/tcpproxy"
	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/internal/buildinfo"
	"github.com/machine-run/machine/internal/streamproxy"
)

// Control API paths on the host agent's unix socket.
const (
	pathStatus = "/v1/status"
	pathStop   = "/v1/stop"   // POST ?force=1
	pathEvents = "/v1/events" // GET: JSON lines of Event, past ones first
	pathGuest  = "/v1/guest/" // GET /v1/guest/{service} with Upgrade: a raw guest stream
	// POST ?after=DURATION: the idle time before an auto-pause from now on; 0s turns it off.
	pathAutoPause = "/v1/auto-pause"
)

// upgradeProto names the raw stream protocol in the Upgrade header.
const upgradeProto = "machine-stream"

// Status is what `machine status` shows. JSON field names are an API.
type Status struct {
	Name      string      `json:"name"`
	State     string      `json:"state"`
	Ready     bool        `json:"ready"`
	AgentPid  int         `json:"agent_pid,omitempty"`
	Arch      string      `json:"arch"`
	CPUs      int         `json:"cpus"`
	MemoryMiB int         `json:"memory_mib"`
	DiskGiB   int         `json:"disk_gib"`
	Driver    string      `json:"driver"`
	Phases    []api.Phase `json:"phases,omitempty"`
	// UptimeSeconds counts from the host agent's start.
	UptimeSeconds float64 `json:"uptime_seconds,omitempty"`
	DockerSocket  string  `json:"docker_socket,omitempty"`
	DockerContext string  `json:"docker_context,omitempty"`
	// GuestMemoryUsedMiB is free(1)'s "used" inside the guest, when it answers;
	// GuestMemoryUnavailableMiB is MemTotal-MemAvailable there.
	GuestMemoryUsedMiB        float64 `json:"guest_memory_used_mib,omitempty"`
	GuestMemoryUnavailableMiB float64 `json:"guest_memory_unavailable_mib,omitempty"`
	Error                     string  `json:"error,omitempty"`
	// Image is the image the machine boots; Upgrade a pending or rolled-back upgrade.
	Image   *store.ImageInfo `json:"image,omitempty"`
	Upgrade *store.Upgrade   `json:"upgrade,omitempty"`
	// ChannelError says why the guest channel is down (State is then "degraded").
	ChannelError string `json:"channel_error,omitempty"`
	// AgentVersion is the build of the running host agent (see internal/buildinfo).
	AgentVersion string `json:"agent_version,omitempty"`
	// AutoPause is "after DURATION", "off", or "unsupported" (the driver cannot pause).
	AutoPause string `json:"auto_pause,omitempty"`
}

// AutoPauseLabel is Status.AutoPause for an idle time before a pause: 0 is off, negative
// unsupported.
func AutoPauseLabel(after time.Duration) string {
	switch {
	case after < 0:
		return "unsupported"
	case after == 0:
		return "off"
	}
	return "after " + after.String()
}

func (a *Agent) status(ctx context.Context) Status {
	a.mu.Lock()
	s := Status{
		Name: a.o.Machine.Name, State: a.shownStateLocked(), Ready: a.ready, AgentPid: os.Getpid(),
		Arch: a.o.Config.Arch, CPUs: a.o.Config.CPUs, MemoryMiB: a.o.Config.MemoryMiB,
		DiskGiB: a.o.Config.DiskGiB, Driver: a.o.Config.Driver,
		Phases:        append([]api.Phase(nil), a.phases...),
		UptimeSeconds: time.Since(a.started).Seconds(),
		Error:         a.lastErr,
		ChannelError:  a.channelErr,
		AgentVersion:  buildinfo.Version(),
	}
	a.mu.Unlock()
	// The idler is asked outside a.mu: its check holds its own lock while it asks a.mu
	// whether the machine is ready.
	s.AutoPause = AutoPauseLabel(a.idle.idleTime())
	paused := a.idle.isPaused()
	if paused && s.State == StateRunning {
		s.State = StatePaused
	}
	if s.Ready {
		s.DockerSocket = a.o.Machine.DockerSocket()
		s.DockerContext = ContextName(a.o.Machine.Name)
	}
	if s.Ready && s.ChannelError == "" && !paused { // a down channel or paused guest would only time the call out
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if info, err := a.guest.info(ictx); err == nil {
			s.GuestMemoryUsedMiB = float64(info.MemoryUsedKiB) / 1024
			s.GuestMemoryUnavailableMiB = float64(info.MemoryUnavailableKiB) / 1024
		}
		cancel()
	}
	return s
}

// serveControl serves the control API and returns its cleanup.
func (a *Agent) serveControl(path string) (func() error, error) {
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.status(r.Context()))
	})
	mux.HandleFunc("POST "+pathStop, func(w http.ResponseWriter, r *http.Request) {
		a.requestStop(r.URL.Query().Get("force") == "1")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST "+pathAutoPause, a.serveAutoPause)
	mux.HandleFunc("GET "+pathEvents, a.serveEvents)
	mux.HandleFunc("GET "+pathPorts, a.servePorts)
	mux.HandleFunc("GET "+pathGuest+"{service}", a.serveGuestStream)
	if a.o.FaultInjection {
		mux.HandleFunc("POST "+pathCutChannel, a.serveCutChannel)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = srv.Close()
		}
		return errors.Join(err, ignoreNotExist(os.Remove(path)))
	}, nil
}

// serveAutoPause changes the running machine's auto-pause (`machine set --auto-pause`).
func (a *Agent) serveAutoPause(w http.ResponseWriter, r *http.Request) {
	after, err := time.ParseDuration(r.URL.Query().Get("after"))
	if err != nil || after < 0 {
		http.Error(w, fmt.Sprintf("after=%q: want a duration such as 5m, or 0s for off", r.URL.Query().Get("after")), http.StatusBadRequest)
		return
	}
	if err := a.idle.setAfter(r.Context(), after); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, driver.ErrUnsupported) {
			code = http.StatusNotImplemented
		}
		http.Error(w, err.Error(), code)
		return
	}
	a.log.Info("auto-pause changed", "now", AutoPauseLabel(after))
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) serveEvents(w http.ResponseWriter, r *http.Request) {
	past, live, cancel := a.events.subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	for _, e := range past {
		enc.Encode(e)
	}
	flush()
	for {
		select {
		case e, ok := <-live:
			if !ok {
				return
			}
			if enc.Encode(e) != nil {
				return
			}
			flush()
		case <-r.Context().Done():
			return
		}
	}
}

// serveGuestStream hands the CLI a raw stream to a guest service (shell, exec) by upgrading
// the HTTP connection, then proxies it with half-close in both directions.
func (a *Agent) serveGuestStream(w http.ResponseWriter, r *http.Request) {
	svc, err := strconv.ParseUint(r.PathValue("service"), 10, 32)
	if err != nil {
		http.Error(w, "bad service number", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Upgrade") != upgradeProto {
		http.Error(w, "want Upgrade: "+upgradeProto, http.StatusUpgradeRequired)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	guest, err := a.drv.DialGuest(ctx, uint32(svc))
	cancel()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		guest.Close()
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		guest.Close()
		return
	}
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", upgradeProto)
	if err := rw.Flush(); err != nil {
		conn.Close()
		guest.Close()
		return
	}
	src := &tcpproxy.Conn{Conn: conn, Peeked: buffered(rw.Reader)}
	streamproxy.Proxy(context.Background(), src, func(context.Context) (net.Conn, error) { return guest, nil }, nil)
}

func buffered(r *bufio.Reader) []byte {
	b, _ := r.Peek(r.Buffered())
	return b
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
