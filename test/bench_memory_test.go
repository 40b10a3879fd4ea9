//go:build e2e

package test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/machine-run/machine/hostagent"
)

// benchMemory prints QEMU's RSS at idle, at the peak while a container holds 1 GiB (a
// tmpfs file, which the container's memory cgroup is charged for), and every 10 s for the
// 60 s after the container is removed: free page reporting should bring it back within
// 100 MB of idle. image is a busybox image loaded in the machine.
func benchMemory(b *testing.B, name, ctxName, image string) {
	b.Helper()
	qemuPid := findQEMU(name)
	mb := func() float64 { return float64(rssKiB(qemuPid)) / 1024 }
	agent := hostagent.NewClient(filepath.Join(env.home, name, "hostagent.sock"))
	guestMB := func() float64 {
		st, err := agent.Status(context.Background())
		if err != nil {
			return 0
		}
		return st.GuestMemoryUnavailableMiB
	}
	// Let the boot's own garbage be reported first: idle is what the machine settles at.
	time.Sleep(10 * time.Second)
	idle, guestIdle := mb(), guestMB()

	docker(b, ctxName, "", "run", "-d", "--name", "hold", "--tmpfs", "/hold:size=1100m", image,
		"sh", "-c", "busybox dd if=/dev/zero of=/hold/f bs=1M count=1024 2>/dev/null && busybox touch /hold/done && sleep 3600")
	for began := time.Now(); ; time.Sleep(time.Second) {
		r := run(b, time.Minute, "", "docker", "--context", ctxName, "exec", "hold", "busybox", "test", "-e", "/hold/done")
		if r.code == 0 {
			break
		}
		if time.Since(began) > 3*time.Minute {
			b.Fatalf("the container never finished writing 1 GiB: %s", r.stderr)
		}
	}
	peak, guestPeak := mb(), guestMB()
	docker(b, ctxName, "", "rm", "-f", "hold")
	freed := time.Now()
	var after float64
	var trail []string
	backAt := time.Duration(-1)
	for i := 1; i <= 6; i++ {
		time.Sleep(time.Until(freed.Add(time.Duration(i) * 10 * time.Second)))
		after = mb()
		trail = append(trail, fmt.Sprintf("%.0f", after))
		if backAt < 0 && after <= idle+100 {
			backAt = time.Since(freed)
		}
	}
	guestAfter := guestMB()
	fmt.Printf("QEMU RSS: idle %.0f MB, a container holding 1 GiB %.0f MB, 60 s after it is removed %.0f MB (every 10 s: %v MB)\n",
		idle, peak, after, trail)
	if backAt >= 0 {
		fmt.Printf("    back within 100 MB of idle %.0f s after the container was removed; given back %.0f of %.0f MB (%.0f%%)\n",
			backAt.Seconds(), peak-after, peak-idle, 100*(peak-after)/(peak-idle))
	} else {
		fmt.Printf("    not back within 100 MB of idle after 60 s; given back %.0f of %.0f MB (%.0f%%)\n",
			max(0, peak-after), peak-idle, 100*(peak-after)/(peak-idle))
	}
	fmt.Printf("    the guest's own use (MemTotal-MemAvailable): idle %.0f MiB, holding %.0f MiB, after %.0f MiB; the rest of QEMU's RSS is QEMU itself and, under TCG, its translation cache (up to 256 MiB)\n",
		guestIdle, guestPeak, guestAfter)
	b.ReportMetric(idle, "qemu_idle_rss_MB")
	b.ReportMetric(peak, "qemu_peak_rss_MB")
	b.ReportMetric(after, "qemu_after60s_rss_MB")
}
