package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/machine-run/machine/guestagent/api"
)

func fakeClock() func() float64 {
	t := 0.0
	return func() float64 { t += 0.5; return t }
}

func TestPhasesReplayAndLive(t *testing.T) {
	s := New(fakeClock())
	s.MeminfoPath = ""
	s.AddPhase(api.Phase{Name: api.PhaseInit, Seconds: 0.1})
	s.Phase(api.PhaseRoot, "")
	past, live, cancel := s.Subscribe()
	defer cancel()
	if len(past) != 2 || past[0].Phase.Name != api.PhaseInit || past[1].Phase.Seconds != 0.5 {
		t.Fatalf("replay: %+v", past)
	}
	s.Phase(api.PhaseDocker, "x")
	s.Ready()
	s.Ready()
	if e := <-live; e.Type != api.EventPhase || e.Phase.Name != api.PhaseDocker || e.Phase.Detail != "x" {
		t.Fatalf("live phase: %+v", e)
	}
	if e := <-live; e.Type != api.EventReady {
		t.Fatalf("live ready: %+v", e)
	}
	select {
	case e := <-live:
		t.Fatalf("second Ready emitted %+v", e)
	default:
	}
	select {
	case <-s.ReadyChan():
	default:
		t.Fatal("ReadyChan not closed")
	}
	info := s.Info()
	if !info.Ready || len(info.Phases) != 3 {
		t.Fatalf("info: %+v", info)
	}
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	s := New(fakeClock())
	_, live, cancel := s.Subscribe()
	defer cancel()
	for i := 0; i < subscriberBuffer+1; i++ {
		s.Phase("p", "")
	}
	n := 0
	for range live {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("got %d events before close, want %d", n, subscriberBuffer)
	}
	s.Fail(errors.New("boom")) // must not block or panic on the dropped subscriber
	if s.Info().Error != "boom" {
		t.Fatal("error not recorded")
	}
}

func TestPortsReplayLatestOnly(t *testing.T) {
	s := New(fakeClock())
	s.Ports([]api.Port{{Proto: "tcp", HostPort: 80}})
	s.Ports([]api.Port{{Proto: "tcp", HostPort: 81}})
	past, _, cancel := s.Subscribe()
	cancel()
	if len(past) != 1 || past[0].Type != api.EventPorts || past[0].Ports[0].HostPort != 81 {
		t.Fatalf("replay: %+v", past)
	}
}

func TestMemory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemTotal:        2000000 kB\nMemFree:  1700000 kB\nMemAvailable:    1750000 kB\nBuffers: 4000 kB\nCached: 170000 kB\nSReclaimable: 6000 kB\n"), 0o644)
	used, unavail, err := Memory(p)
	if err != nil || used != 120000 || unavail != 250000 {
		t.Fatalf("Memory = %d, %d, %v; want 120000, 250000", used, unavail, err)
	}
	os.WriteFile(p, []byte("MemTotal: 5 kB\nMemAvailable: 9 kB\n"), 0o644)
	if _, _, err := Memory(p); err == nil {
		t.Fatal("want an error when MemAvailable exceeds MemTotal")
	}
}
