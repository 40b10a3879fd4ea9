//go:build e2e

package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchPause boots a machine that auto-pauses after 5 s idle and prints QEMU's CPU over 60
// s idle while awake (a Docker API connection held open keeps it so) and while paused, and
// how long the first Docker API request takes when it has to resume the machine, against
// the same request on an awake machine.
func benchPause(b *testing.B) {
	const name = "bench-pause"
	machine(b, "create", name, "--image", latestImage(b, hostArch()), "--share=", "--auto-pause-after", "5s")
	defer machine(b, "rm", "--force", name)
	machine(b, "start", name)
	qemuPid := findQEMU(name)
	sock := filepath.Join(env.home, name, "docker.sock")

	hold, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	awake := cpuOver(qemuPid, 60*time.Second)
	var awakePing []time.Duration
	for i := 0; i < 5; i++ {
		awakePing = append(awakePing, dockerPing(b, sock))
	}
	hold.Close()

	waitEvents(b, name, "paused", 1, time.Minute)
	paused := cpuOver(qemuPid, 60*time.Second)
	fmt.Printf("QEMU CPU over 60 s idle: awake %.1f%%, paused %.2f%%\n", awake, paused)
	b.ReportMetric(awake, "qemu_awake_idle_cpu_%")
	b.ReportMetric(paused, "qemu_paused_cpu_%")

	var resumed []time.Duration
	for i := 0; i < 5; i++ {
		if i > 0 {
			waitEvents(b, name, "paused", i+1, time.Minute)
		}
		resumed = append(resumed, dockerPing(b, sock))
	}
	fmt.Printf("first Docker API request (GET /_ping on docker.sock): on a paused machine p50 %.1f ms (max %.1f, of %d), awake p50 %.1f ms\n",
		ms(percentile(resumed, 50)), ms(percentile(resumed, 100)), len(resumed), ms(percentile(awakePing, 50)))
	fmt.Printf("    the host agent's resume (QMP cont) as its events report it: %s\n", strings.Join(eventMessages(name, "resumed"), "; "))
	b.ReportMetric(ms(percentile(resumed, 50)), "resume_ping_p50_ms")
	b.ReportMetric(ms(percentile(awakePing, 50)), "awake_ping_p50_ms")
}

// cpuOver is a process's CPU use in percent of one core over d.
func cpuOver(pid int, d time.Duration) float64 {
	c0, t0 := cpuTicks(pid), time.Now()
	time.Sleep(d)
	return float64(cpuTicks(pid)-c0) / 100 / time.Since(t0).Seconds() * 100
}

// dockerPing times one Docker API request on a fresh connection to the machine's socket.
func dockerPing(t testing.TB, sock string) time.Duration {
	t.Helper()
	began := time.Now()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET /_ping: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_ping: %s", resp.Status)
	}
	return time.Since(began)
}

// eventMessages returns the messages of a machine's events of one type, oldest first.
func eventMessages(name, typ string) []string {
	b, _ := os.ReadFile(filepath.Join(env.home, name, "events.jsonl"))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		var e struct{ Type, Message string }
		if json.Unmarshal([]byte(l), &e) == nil && e.Type == typ {
			out = append(out, e.Message)
		}
	}
	return out
}

// waitEvents waits until a machine has written n events of a type.
func waitEvents(t testing.TB, name, typ string, n int, timeout time.Duration) {
	t.Helper()
	for end := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		if len(eventMessages(name, typ)) >= n {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("machine %q: no %d %q events within %v (have %v)", name, n, typ, timeout, eventMessages(name, typ))
		}
	}
}
