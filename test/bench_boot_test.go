//go:build e2e

package test

import (
	"fmt"
	"testing"
	"time"
)

// benchBoot starts the machine five times, the first on a blank data disk (it is formatted),
// and prints each start-to-ready with its boot phases, then the median, min and max of all
// five and of the four later boots. It leaves the machine running and returns what the last
// start printed.
func benchBoot(b *testing.B, name string) string {
	b.Helper()
	const boots = 5
	var all, later []time.Duration
	var out string
	for i := 0; i < boots; i++ {
		label := "first boot (blank disk)"
		if i > 0 {
			label = fmt.Sprintf("boot %d", i+1)
		}
		began := time.Now()
		out = machine(b, "start", name)
		d := time.Since(began)
		fmt.Printf("start to Docker-ready, %s: %.1fs\n%s", label, d.Seconds(), indent(phaseLines(out)))
		all = append(all, d)
		if i == 0 {
			b.ReportMetric(d.Seconds(), "ready1_s")
		} else {
			later = append(later, d)
		}
		if i < boots-1 {
			machine(b, "stop", name)
		}
	}
	fmt.Printf("start to Docker-ready over %d boots: median %.1fs, min %.1fs, max %.1fs; later boots only: median %.1fs, min %.1fs, max %.1fs\n",
		len(all), percentile(all, 50).Seconds(), percentile(all, 0).Seconds(), percentile(all, 100).Seconds(),
		percentile(later, 50).Seconds(), percentile(later, 0).Seconds(), percentile(later, 100).Seconds())
	b.ReportMetric(percentile(all, 50).Seconds(), "ready_median_s")
	return out
}
