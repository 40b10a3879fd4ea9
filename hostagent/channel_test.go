package hostagent

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// waitEvent follows the agent's events until one of type typ arrives after skip earlier ones
// of that type.
func waitChannelEvent(t *testing.T, c *Client, typ string, skip int) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got *Event
	c.Events(ctx, func(e Event) bool {
		if e.Type != typ {
			return true
		}
		if skip > 0 {
			skip--
			return true
		}
		got = &e
		return false
	})
	if got == nil {
		t.Fatalf("no %s event", typ)
	}
	return *got
}

func TestCutChannelIsReportedAndRecovered(t *testing.T) {
	m, cfg := testMachine(t)
	vm := newFakeVM()
	r := startAgentWith(t, m, cfg, vm, Options{FaultInjection: true})
	ctx := context.Background()

	release := vm.holdRedials()
	if err := r.c.CutChannel(ctx); err != nil {
		t.Fatal(err)
	}
	down := waitChannelEvent(t, r.c, EventChannelDown, 0)
	if !strings.Contains(down.Message, "carrier closed") {
		t.Errorf("channel-down message %q does not say why", down.Message)
	}
	st, err := r.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateDegraded || !strings.Contains(st.ChannelError, "carrier closed") {
		t.Fatalf("status while the channel is down: state %q, channel error %q", st.State, st.ChannelError)
	}

	// A Docker API call made during the break waits for the channel and then succeeds.
	answered := make(chan string, 1)
	go func() {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", m.DockerSocket())
		}}}
		resp, err := hc.Get("http://docker/_ping")
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- string(b)
	}()
	vm.mu.Lock()
	syncsBefore := vm.syncs
	vm.mu.Unlock()
	release()
	up := waitChannelEvent(t, r.c, EventChannelUp, 0)
	if up.Seconds <= 0 {
		t.Errorf("channel-up does not say how long the outage was: %+v", up)
	}
	if got := <-answered; got != "OK" {
		t.Errorf("Docker call across the break: %q", got)
	}
	st, err = r.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateRunning || st.ChannelError != "" {
		t.Errorf("status after recovery: state %q, channel error %q", st.State, st.ChannelError)
	}
	// The clock was pushed once the channel came back, out of turn.
	sync := waitChannelEvent(t, r.c, EventTimeSync, 0)
	if !strings.Contains(sync.Message, "channel restored") {
		t.Errorf("time-sync event %q", sync.Message)
	}
	vm.mu.Lock()
	syncsAfter := vm.syncs
	vm.mu.Unlock()
	if syncsAfter <= syncsBefore {
		t.Errorf("guest clock not set after the channel came back (%d -> %d)", syncsBefore, syncsAfter)
	}
	// A second break is reported again.
	if err := r.c.CutChannel(ctx); err != nil {
		t.Fatal(err)
	}
	waitChannelEvent(t, r.c, EventChannelUp, 1)

	r.stop(t, false)
	b, _ := os.ReadFile(m.EventsPath())
	for _, want := range []string{`"type":"channel-down"`, `"type":"channel-up"`, `"type":"time-sync"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("events.jsonl lacks %s", want)
		}
	}
}

func TestCutChannelNeedsFaultInjection(t *testing.T) {
	m, cfg := testMachine(t)
	vm := newFakeVM()
	r := startAgent(t, m, cfg, vm)
	if err := r.c.CutChannel(context.Background()); err == nil {
		t.Fatal("the fault endpoint is served without FaultInjection")
	}
	r.stop(t, false)
}

func TestClockGap(t *testing.T) {
	const tick = 2 * time.Second
	for _, tt := range []struct {
		wall, mono time.Duration
		want       string
	}{
		{2 * time.Second, 2 * time.Second, ""},
		{2*time.Second + 300*time.Millisecond, 2 * time.Second, ""},            // jitter
		{4 * time.Second, 4 * time.Second, ""},                                 // a late tick
		{120 * time.Second, 2 * time.Second, "against its monotonic clock"},    // host slept
		{-time.Hour, 2 * time.Second, "against its monotonic clock"},           // clock set back
		{30 * time.Second, 30 * time.Second, "host agent stood still for 30s"}, // agent frozen
	} {
		got := clockGap(tt.wall, tt.mono, tick)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("clockGap(%v, %v) = %q, want %q", tt.wall, tt.mono, got, tt.want)
		}
	}
}
