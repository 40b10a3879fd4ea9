package cmdline

import (
	"testing"
	"time"
)

func TestBootClock(t *testing.T) {
	host := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		host   time.Time
		now    time.Time
		uptime time.Duration
		want   time.Time
		set    bool
	}{
		{"no RTC: clock at the epoch", host, time.Unix(0, 0), 3 * time.Second, host.Add(3 * time.Second), true},
		{"clock behind the host's reading", host, host.Add(-time.Hour), time.Second, host.Add(time.Second), true},
		{"clock right (RTC)", host, host.Add(4 * time.Second), 3 * time.Second, time.Time{}, false},
		{"clock ahead: left for the host sync", host, host.Add(time.Hour), time.Second, time.Time{}, false},
		{"no host reading", time.Time{}, time.Unix(0, 0), time.Second, time.Time{}, false},
	} {
		got, set := BootClock(tc.host, tc.now, tc.uptime)
		if set != tc.set || !got.Equal(tc.want) {
			t.Errorf("%s: BootClock = %v, %v; want %v, %v", tc.name, got, set, tc.want, tc.set)
		}
	}
}
