//go:build e2e

package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/hostagent"
)

// BenchmarkMachine boots a machine under QEMU and prints, in one run: start-to-ready (a first
// boot on a blank disk, then four reboots, with phases, median, min and max), host-agent
// memory and idle CPU, publish-to-reachable latency, forwarding throughput and latency
// (machine's forwarder, the raw guest channel, QEMU's own hostfwd, with ratios), memory given
// back after a container freed 1 GiB, the home share against the machine's disk, and idle CPU
// awake and auto-paused with the first request's latency on a paused machine. Run with
// -benchtime=1x.
func BenchmarkMachine(b *testing.B) {
	const name = "bench"
	const ctxName = "machine-bench"
	machine(b, "create", name, "--image", latestImage(b, hostArch()), "--qemu-hostfwd", "tcp:127.0.0.1:19000-:9000")
	defer machine(b, "rm", "--force", name)

	started := benchBoot(b, name)

	agentPid := readPid(filepath.Join(env.home, name, "hostagent.pid"))
	qemuPid := findQEMU(name)
	rss := rssKiB(agentPid)
	a0, q0, t0 := cpuTicks(agentPid), cpuTicks(qemuPid), time.Now()
	time.Sleep(60 * time.Second)
	a1, q1, el := cpuTicks(agentPid), cpuTicks(qemuPid), time.Since(t0).Seconds()
	agentCPU := float64(a1-a0) / 100 / el * 100
	qemuCPU := float64(q1-q0) / 100 / el * 100
	fmt.Printf("idle over %.0fs: host agent %.2f%% CPU, %.1f MB RSS; QEMU %.1f%% CPU, %.0f MB RSS\n", el, agentCPU, float64(rss)/1024, qemuCPU, float64(rssKiB(qemuPid))/1024)
	b.ReportMetric(float64(rss)/1024, "agent_rss_MB")
	b.ReportMetric(agentCPU, "agent_idle_cpu_%")
	b.ReportMetric(qemuCPU, "qemu_idle_cpu_%")
	if st, err := hostagent.NewClient(filepath.Join(env.home, name, "hostagent.sock")).Status(context.Background()); err == nil {
		fmt.Printf("guest memory after boot, engine idle: used (free(1)) %.0f MiB, MemTotal-MemAvailable %.0f MiB\n", st.GuestMemoryUsedMiB, st.GuestMemoryUnavailableMiB)
		b.ReportMetric(st.GuestMemoryUsedMiB, "guest_used_MiB")
	}

	docker(b, ctxName, string(busyboxRootfs(b)), "import", "--change", `CMD ["/bin/sh"]`, "-", "busybox:bench")

	// Publish-to-reachable: from `docker run -d -p` returning to a TCP connect succeeding.
	var pub []time.Duration
	for i := 0; i < 5; i++ {
		port := 9100 + i
		docker(b, ctxName, "", "run", "-d", "--name", fmt.Sprint("p", i), "-p", fmt.Sprintf("%d:9000", port), "busybox:bench", "/bin/echoserver", "-tcp", ":9000")
		began := time.Now()
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Since(began) > 20*time.Second {
				b.Fatalf("port %d never reachable", port)
			}
			time.Sleep(time.Millisecond)
		}
		pub = append(pub, time.Since(began))
		docker(b, ctxName, "", "rm", "-f", fmt.Sprint("p", i))
	}
	p50 := percentile(pub, 50)
	fmt.Printf("publish to reachable on the host: p50 %.1f ms (of %d)\n", ms(p50), len(pub))
	b.ReportMetric(ms(p50), "publish_p50_ms")

	benchForwarding(b, name, ctxName, "busybox:bench")

	// docker load through the socket.
	path := bigImageTar(b, "big:bench", 200<<20)
	st, _ := os.Stat(path)
	began := time.Now()
	docker(b, ctxName, "", "load", "-i", path)
	loadMBps := float64(st.Size()) / 1e6 / time.Since(began).Seconds()
	fmt.Printf("docker load of %d MB through docker.sock: %.1f MB/s\n", st.Size()>>20, loadMBps)
	b.ReportMetric(loadMBps, "load_MB/s")

	benchMemory(b, name, ctxName, "busybox:bench")
	home, _ := os.UserHomeDir() // the folder new machines share
	benchShareTransports(b, name, ctxName, home, shareTransport(started))
	// Auto-pause needs a machine of its own (a short idle time), and the CPU figures a quiet host.
	machine(b, "stop", name)
	benchPause(b)
}

func phaseLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "s  (+") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "\n") + "\n"
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func readPid(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func findQEMU(name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), "machine-"+name+"\x00") {
			n, _ := strconv.Atoi(e.Name())
			return n
		}
	}
	return 0
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// cpuTicks is utime+stime of pid in clock ticks (100 per second on Linux).
func cpuTicks(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			return u + st
		}
	}
	return 0
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
