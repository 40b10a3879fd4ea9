package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/state"
)

type harness struct {
	st       *state.State
	client   *http.Client
	shutdown chan struct{}
	setTime  chan time.Time
	setErr   error
}

// start serves the control service on a real unix-free loopback listener, as the transport
// would hand it a listener.
func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{
		st:       state.New(func() float64 { return 1.25 }),
		shutdown: make(chan struct{}, 1),
		setTime:  make(chan time.Time, 1),
	}
	h.st.MeminfoPath = ""
	svc := &Service{
		State:    h.st,
		Shutdown: ShutdownFunc(func(ctx context.Context) { h.shutdown <- struct{}{} }),
		SetTime: func(t time.Time) error {
			if h.setErr != nil {
				return h.setErr
			}
			h.setTime <- t
			return nil
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	h.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", l.Addr().String())
		},
	}}
	return h
}

func TestInfo(t *testing.T) {
	h := start(t)
	h.st.Phase(api.PhaseInit, "")
	h.st.SetDataDisk(api.DataDisk{Device: "/dev/vdb", Formatted: true, MountPoint: api.DataMount})
	h.st.Ready()
	resp, err := h.client.Get("http://guest" + api.PathInfo)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info api.Info
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if !info.Ready || len(info.Phases) != 1 || info.Phases[0].Seconds != 1.25 || info.DataDisk.Device != "/dev/vdb" || info.Arch == "" {
		t.Fatalf("info: %+v", info)
	}
}

func TestEventsReplayThenLive(t *testing.T) {
	h := start(t)
	h.st.Phase(api.PhaseInit, "")
	h.st.Phase(api.PhaseRoot, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://guest"+api.PathEvents, nil)
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func() api.Event {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("event stream ended: %v", sc.Err())
		}
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := next(); e.Phase == nil || e.Phase.Name != api.PhaseInit {
		t.Fatalf("first replayed event: %+v", e)
	}
	if e := next(); e.Phase == nil || e.Phase.Name != api.PhaseRoot {
		t.Fatalf("second replayed event: %+v", e)
	}
	// Live events arrive only after the replay was flushed, so the reader must see them
	// without the server closing the stream.
	h.st.Phase(api.PhaseDocker, "")
	h.st.Ready()
	if e := next(); e.Phase == nil || e.Phase.Name != api.PhaseDocker {
		t.Fatalf("live phase: %+v", e)
	}
	if e := next(); e.Type != api.EventReady {
		t.Fatalf("live ready: %+v", e)
	}
}

func TestTime(t *testing.T) {
	h := start(t)
	want := time.Date(2026, 5, 1, 12, 0, 0, 7, time.UTC)
	cases := []struct {
		body string
		code int
	}{
		{`{"unix_nano":` + itoa(want.UnixNano()) + `}`, http.StatusNoContent},
		{`{"unix_nano":0}`, http.StatusBadRequest},
		{`{"unix_nano":-5}`, http.StatusBadRequest},
		{`not json`, http.StatusBadRequest},
	}
	for _, c := range cases {
		resp, err := h.client.Post("http://guest"+api.PathTime, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("POST %s: status %d, want %d", c.body, resp.StatusCode, c.code)
		}
	}
	select {
	case got := <-h.setTime:
		if !got.Equal(want) {
			t.Fatalf("clock set to %v, want %v", got, want)
		}
	default:
		t.Fatal("SetTime not called")
	}
	select {
	case got := <-h.setTime:
		t.Fatalf("invalid request set the clock to %v", got)
	default:
	}
	h.setErr = errors.New("EPERM")
	resp, err := h.client.Post("http://guest"+api.PathTime, "application/json", strings.NewReader(`{"unix_nano":`+itoa(want.UnixNano())+`}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("failing SetTime: status %d", resp.StatusCode)
	}
}

func TestShutdown(t *testing.T) {
	h := start(t)
	resp, err := h.client.Get("http://guest" + api.PathShutdown)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET shutdown: %d", resp.StatusCode)
	}
	select {
	case <-h.shutdown:
		t.Fatal("GET must not shut down")
	case <-time.After(50 * time.Millisecond):
	}
	resp, err = h.client.Post("http://guest"+api.PathShutdown, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST shutdown: %d", resp.StatusCode)
	}
	select {
	case <-h.shutdown:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdowner not called")
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
