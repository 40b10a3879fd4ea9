//go:build e2e

package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machine-run/machine/hostagent"
)

// TestFaults is the fault suite: one machine shared by the checks that leave it running
// (channel cut, host sleep and clock), then the destructive ones (host agent killed
// mid-stream, power loss), each followed by a start that must recover. MACHINE_FAULT_CYCLES
// sets how many power-loss cycles run (each is a boot).
func TestFaults(t *testing.T) {
	const name = "faults"
	const ctxName = "machine-faults"
	cycles := 3
	if v := os.Getenv("MACHINE_FAULT_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("MACHINE_FAULT_CYCLES=%q: want a count", v)
		}
		cycles = n
	}
	// The host agent serves its fault endpoint (cut the channel) only when asked.
	t.Setenv("MACHINE_FAULT_INJECTION", "1")
	defer dumpLogs(t, name)
	machine(t, "create", name, "--cpus", "2", "--memory", "2GiB", "--disk", "8GiB", "--image", latestImage(t, "amd64"))
	defer run(t, 2*time.Minute, "", env.bin, "stop", "--force", name)
	machine(t, "start", name)
	docker(t, ctxName, string(busyboxRootfs(t)), "import", "--change", `CMD ["/bin/sh"]`, "-", "busybox:e2e")
	docker(t, ctxName, "", "run", "-d", "--name", "web", "-p", "8090:80", "busybox:e2e", "httpd", "-f", "-p", "80", "-h", "/www")
	// 9010 is published on the guest's wildcard (the host reaches it over QEMU's network),
	// 9011 on its loopback (the host reaches it through the guest channel).
	docker(t, ctxName, "", "run", "-d", "--name", "echo", "-p", "9010:9000", "-p", "127.0.0.1:9011:9000", "busybox:e2e", "/bin/echoserver", "-tcp", ":9000")
	waitHTTP(t, "http://127.0.0.1:8090/index.html", 30*time.Second)

	t.Run("secrets", func(t *testing.T) { testSecrets(t, name, ctxName) })
	t.Run("channel cut", func(t *testing.T) { testChannelCut(t, name, ctxName) })
	t.Run("host sleep", func(t *testing.T) { testHostSleep(t, name, ctxName) })
	t.Run("host agent killed", func(t *testing.T) { testAgentKilled(t, name, ctxName) })
	t.Run("power loss", func(t *testing.T) { testPowerLoss(t, name, ctxName, cycles) })
}

func machineDir(name string) string { return filepath.Join(env.home, name) }

// openEcho opens a forwarded connection to the echo container and checks one round trip.
func openEcho(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	echoOn(t, c)
	return c
}

// echoOn checks one round trip on a forwarded connection to the echo container.
func echoOn(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo through the forwarded port %s: %q, %v", c.RemoteAddr(), line, err)
	}
	c.SetDeadline(time.Time{})
}

// waitClosed asserts that a connection whose path broke ends with an error or EOF, not a hang.
func waitClosed(t *testing.T, c net.Conn, bound time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(bound))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("a connection open across the fault hung for %v instead of failing", bound)
	}
}

// eventsSince returns the machine's events of type typ written after since.
func eventsSince(name, typ string, since time.Time) []hostagent.Event {
	b, _ := os.ReadFile(filepath.Join(machineDir(name), "events.jsonl"))
	var out []hostagent.Event
	for _, line := range strings.Split(string(b), "\n") {
		var e hostagent.Event
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == typ && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

func waitEvent(t *testing.T, name, typ string, since time.Time, bound time.Duration) hostagent.Event {
	t.Helper()
	for end := time.Now().Add(bound); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if es := eventsSince(name, typ, since); len(es) > 0 {
			return es[0]
		}
	}
	t.Fatalf("no %s event within %v", typ, bound)
	return hostagent.Event{}
}

func machineState(t *testing.T, name string) string {
	return strings.TrimSpace(run(t, time.Minute, "", env.bin, "status", name, "--format", "{{.State}}").stdout)
}

func testChannelCut(t *testing.T, name, ctxName string) {
	open := openEcho(t, "127.0.0.1:9011")
	defer open.Close()
	overNet := openEcho(t, "127.0.0.1:9010")
	defer overNet.Close()
	c := hostagent.NewClient(filepath.Join(machineDir(name), "hostagent.sock"))
	began := time.Now()
	if err := c.CutChannel(context.Background()); err != nil {
		t.Fatal(err)
	}
	down := waitEvent(t, name, hostagent.EventChannelDown, began, 10*time.Second)
	t.Logf("channel-down after %v: %s", down.Time.Sub(began).Round(time.Millisecond), down.Message)
	// The connection whose stream rode the cut session fails instead of hanging; the one
	// over QEMU's network never used the channel and goes on.
	waitClosed(t, open, 30*time.Second)
	echoOn(t, overNet)
	up := waitEvent(t, name, hostagent.EventChannelUp, began, 30*time.Second)
	if st := machineState(t, name); st != "running" {
		t.Errorf("state after the channel came back: %q", st)
	}
	waitHTTP(t, "http://127.0.0.1:8090/index.html", 30*time.Second)
	openEcho(t, "127.0.0.1:9010").Close()
	openEcho(t, "127.0.0.1:9011").Close()
	docker(t, ctxName, "", "ps", "-q")
	t.Logf("channel cut: recovered (channel-up) %v after the cut (outage %.2fs); new forwarded and Docker connections work %v after the cut",
		up.Time.Sub(began).Round(time.Millisecond), up.Seconds, time.Since(began).Round(time.Millisecond))
}

func qemuPid(t *testing.T, name string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(filepath.Base(strings.SplitN(string(b), "\x00", 2)[0]), "qemu-system") &&
			strings.Contains(string(b), "machine-"+name+"\x00") {
			return pid
		}
	}
	t.Fatalf("no QEMU process for machine %q", name)
	return 0
}

// guestClockError is the guest's wall clock minus the host's, bounded by the shell's round trip.
func guestClockError(t *testing.T, name string) time.Duration {
	t.Helper()
	before := time.Now()
	out := run(t, time.Minute, "", env.bin, "shell", name, "--", "date", "+%s.%N")
	after := time.Now()
	if out.code != 0 {
		t.Fatalf("shell date: exit %d: %s", out.code, out.stderr)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(out.stdout), 64)
	if err != nil {
		t.Fatalf("guest date printed %q", out.stdout)
	}
	guest := time.Unix(0, int64(f*1e9))
	switch {
	case guest.Before(before):
		return guest.Sub(before)
	case guest.After(after):
		return guest.Sub(after)
	}
	return 0
}

// testHostSleep freezes QEMU as a host sleep freezes a VM, with the guest clock set an hour
// wrong first: after SIGCONT the host agent must notice the gap (its keepalive times out and
// the channel comes back) and push the clock, and Docker and the ports must work.
func testHostSleep(t *testing.T, name, ctxName string) {
	wrong := time.Now().Add(-time.Hour).Unix()
	if r := run(t, time.Minute, "", env.bin, "shell", name, "--", "date", "-s", "@"+strconv.FormatInt(wrong, 10)); r.code != 0 {
		t.Fatalf("set the guest clock: exit %d: %s", r.code, r.stderr)
	}
	if e := guestClockError(t, name); e > -30*time.Minute {
		t.Fatalf("the guest clock did not go wrong (error %v)", e)
	}
	pid := qemuPid(t, name)
	stoppedAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A laptop lid closed for two minutes; MACHINE_FAULT_SLEEP shortens it for quick runs.
	sleep := 120 * time.Second
	if v := os.Getenv("MACHINE_FAULT_SLEEP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("MACHINE_FAULT_SLEEP=%q: want a duration", v)
		}
		sleep = d
	}
	time.Sleep(sleep)
	if st := machineState(t, name); st != "degraded" {
		t.Errorf("state while QEMU is frozen: %q, want degraded", st)
	}
	resumed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	sync := waitEvent(t, name, hostagent.EventTimeSync, resumed, 30*time.Second)
	clockErr := guestClockError(t, name)
	if clockErr > time.Second || clockErr < -time.Second {
		t.Errorf("guest clock %v off the host's after the resume", clockErr)
	}
	docker(t, ctxName, "", "ps", "-q")
	waitHTTP(t, "http://127.0.0.1:8090/index.html", 30*time.Second)
	openEcho(t, "127.0.0.1:9010").Close()
	recovered := time.Since(resumed)
	up := firstTime(eventsSince(name, hostagent.EventChannelUp, resumed))
	t.Logf("host sleep: frozen %v; channel up %v, clock pushed %v after SIGCONT (%s); guest clock error %v; Docker and ports answer %v after SIGCONT (target 5 s); channel down %v after SIGSTOP",
		sleep, up.Sub(resumed).Round(time.Millisecond), sync.Time.Sub(resumed).Round(time.Millisecond), sync.Message, clockErr, recovered.Round(time.Millisecond),
		firstTime(eventsSince(name, hostagent.EventChannelDown, stoppedAt)).Sub(stoppedAt).Round(time.Millisecond))
}

func firstTime(es []hostagent.Event) time.Time {
	if len(es) == 0 {
		return time.Time{}
	}
	return es[0].Time
}

// testAgentKilled kills the host agent while a `docker logs -f`, a large `docker cp` and a
// forwarded connection run: each must end with an error, none may hang, and `start` must
// bring the machine back with the data intact.
func testAgentKilled(t *testing.T, name, ctxName string) {
	docker(t, ctxName, "", "run", "-d", "--name", "ticker", "busybox:e2e", "sh", "-c", "while true; do date; sleep 0.2; done")
	big := filepath.Join(t.TempDir(), "big")
	f, _ := os.Create(big)
	io.CopyN(f, rand.NewChaCha8([32]byte{7}), 100<<20)
	f.Close()
	docker(t, ctxName, "", "run", "-d", "--name", "keeper", "-v", "keep:/keep", "busybox:e2e", "sh", "-c", "echo kept > /keep/marker && sleep 100000")
	// The marker must be on disk before the kill for the restart to owe it (the VM dies with
	// its host agent, like a power loss).
	for end := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if r := run(t, time.Minute, "", env.bin, "shell", name, "--", "sh", "-c", "grep -qs kept /var/lib/docker/volumes/keep/_data/marker && sync"); r.code == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the marker never reached the volume")
		}
	}

	type client struct {
		what string
		cmd  *exec.Cmd
		done chan error
	}
	start := func(what string, args ...string) *client {
		cmd := exec.Command("docker", append([]string{"--context", ctxName}, args...)...)
		cmd.Env = cmdEnv()
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &client{what: what, cmd: cmd, done: make(chan error, 1)}
		go func() { c.done <- cmd.Wait() }()
		return c
	}
	logs := start("docker logs -f", "logs", "-f", "ticker")
	cp := start("docker cp of 100 MB", "cp", big, "keeper:/keep/big")
	conn := openEcho(t, "127.0.0.1:9010")
	defer conn.Close()
	time.Sleep(2 * time.Second)

	pid, err := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(machineDir(name), "hostagent.pid"))))
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	const bound = 30 * time.Second
	for _, c := range []*client{logs, cp} {
		select {
		case err := <-c.done:
			if err == nil {
				t.Logf("%s exited 0 after the kill (it may have finished first)", c.what)
			} else {
				t.Logf("%s failed %v after the kill: %v", c.what, time.Since(killed).Round(time.Millisecond), err)
			}
		case <-time.After(bound):
			c.cmd.Process.Kill()
			t.Errorf("%s still running %v after the host agent was killed", c.what, bound)
		}
	}
	waitClosed(t, conn, bound)
	// The VM dies with its host agent.
	for end := time.Now().Add(bound); time.Now().Before(end) && qemuRunning(name); {
		time.Sleep(100 * time.Millisecond)
	}
	if qemuRunning(name) {
		t.Fatal("QEMU still runs after its host agent was killed")
	}
	machine(t, "start", name)
	if out := docker(t, ctxName, "", "run", "--rm", "-v", "keep:/keep", "busybox:e2e", "cat", "/keep/marker"); out != "kept\n" {
		t.Errorf("volume marker after the restart: %q", out)
	}
	docker(t, ctxName, "", "rm", "-f", "ticker", "keeper")
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

// testPowerLoss kills QEMU with SIGKILL while a container appends fsynced records, then
// starts the machine again: the data disk must be checked (or found clean) and every
// acknowledged record must be there.
func testPowerLoss(t *testing.T, name, ctxName string, cycles int) {
	passed, lost := 0, 0
	for i := 1; i <= cycles; i++ {
		acked := writeUntilKilled(t, name, ctxName, time.Duration(1000+rand.IntN(3000))*time.Millisecond)
		out := machine(t, "start", name)
		check := ""
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "data-disk") {
				check = strings.TrimSpace(line)
			}
		}
		got := docker(t, ctxName, "", "run", "--rm", "-v", "records:/data", "busybox:e2e", "/bin/echoserver", "-verify", "/data/rec")
		var n, tail int
		if _, err := fmt.Sscanf(got, "records %d tail %d", &n, &tail); err != nil {
			t.Fatalf("cycle %d: verify printed %q", i, got)
		}
		if n < acked {
			lost += acked - n
			t.Errorf("cycle %d: %d records acknowledged before the kill, %d on disk", i, acked, n)
		} else {
			passed++
		}
		t.Logf("cycle %d: acknowledged %d, on disk %d (tail %d bytes); %s", i, acked, n, tail, check)
	}
	t.Logf("power loss: %d of %d cycles passed, %d acknowledged records lost", passed, cycles, lost)
}

// writeUntilKilled runs the record writer attached, reads its acknowledgements, and kills QEMU
// after the given time from the first one. It returns the last record acknowledged.
func writeUntilKilled(t *testing.T, name, ctxName string, after time.Duration) int {
	t.Helper()
	cmd := exec.Command("docker", "--context", ctxName, "run", "--rm", "-v", "records:/data", "busybox:e2e", "/bin/echoserver", "-records", "/data/rec")
	cmd.Env = cmdEnv()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks := make(chan int, 1024)
	go func() {
		defer close(acks)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				acks <- n
			}
		}
	}()
	last := 0
	var kill <-chan time.Time
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case n, ok := <-acks:
			if !ok {
				cmd.Wait()
				if kill != nil {
					t.Fatalf("the writer stopped before the kill (last %d)", last)
				}
				t.Fatal("the writer printed nothing")
			}
			if kill == nil {
				kill = time.After(after)
			}
			last = n
			continue
		case <-kill:
		case <-timeout:
			t.Fatal("the record writer never started")
		}
		break
	}
	syscall.Kill(qemuPid(t, name), syscall.SIGKILL)
	// Acknowledgements already in flight were printed before the kill.
	for n := range acks {
		last = n
	}
	cmd.Wait()
	for end := time.Now().Add(time.Minute); time.Now().Before(end) && machineState(t, name) != "stopped"; {
		time.Sleep(200 * time.Millisecond)
	}
	return last
}
