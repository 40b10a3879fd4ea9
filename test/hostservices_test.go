//go:build e2e

package test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostOnlyName resolves only through the host's /etc/hosts (the test adds it); the
// hypervisor's DNS has never heard of it.
const (
	hostOnlyName = "machine-e2e-hostonly.test"
	hostOnlyIP   = "203.0.113.77"
)

// TestHostServices boots one machine and checks the host services from containers:
// host.docker.internal on the default bridge and on a user network (TCP to a host HTTP
// server on 127.0.0.1 only; UDP is not intercepted yet), --add-host NAME:host-gateway,
// DNS of a host-only name through the host's resolver, and, after a restart with host access
// off, that containers can no longer reach the host.
func TestHostServices(t *testing.T) {
	const name = "hostsvc"
	const ctxName = "machine-hostsvc"
	defer dumpLogs(t, name)

	// Host services on loopback only: reaching them proves the path goes through the host
	// agent (the hypervisor NAT's host alias would not reach 127.0.0.1 listeners).
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the host\n") }))
	httpPort := hl.Addr().(*net.TCPAddr).Port
	ul, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() { // a UDP echo on the host's loopback that says who answered
		buf := make([]byte, 2048)
		for {
			n, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			ul.WriteTo(append([]byte("host echo: "), buf[:n]...), from)
		}
	}()
	udpAddr := func(host string) string {
		return net.JoinHostPort(host, strconv.Itoa(ul.LocalAddr().(*net.UDPAddr).Port))
	}
	url := func(host string) string { return "http://" + net.JoinHostPort(host, strconv.Itoa(httpPort)) + "/" }

	probe := func(t *testing.T, args ...string) string {
		t.Helper()
		return docker(t, ctxName, "", append([]string{"run", "--rm"}, args...)...)
	}

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"start", func(t *testing.T) {
			machine(t, "create", name, "--cpus", "2", "--memory", "2GiB", "--disk", "8GiB", "--image", latestImage(t, "amd64"), "--share", env.shared)
			machine(t, "start", name)
			docker(t, ctxName, string(hostProbeRootfs(t)), "import", "-", "hostprobe:e2e")
			docker(t, ctxName, "", "network", "create", "hsnet")
		}},
		{"host.docker.internal over TCP from the default bridge", func(t *testing.T) {
			if out := probe(t, "hostprobe:e2e", "/hostprobe", "-get", url("host.docker.internal")); out != "hello from the host\n" {
				t.Errorf("got %q", out)
			}
			if out := probe(t, "hostprobe:e2e", "/hostprobe", "-get", url("gateway.docker.internal")); out != "hello from the host\n" {
				t.Errorf("gateway.docker.internal: got %q", out)
			}
			// In the machine's own network namespace (the guest's processes too).
			if out := probe(t, "--network", "host", "hostprobe:e2e", "/hostprobe", "-get", url("host.docker.internal")); out != "hello from the host\n" {
				t.Errorf("--network host: got %q", out)
			}
		}},
		{"host.docker.internal over TCP from a user network", func(t *testing.T) {
			if out := probe(t, "--network", "hsnet", "hostprobe:e2e", "/hostprobe", "-get", url("host.docker.internal")); out != "hello from the host\n" {
				t.Errorf("got %q", out)
			}
		}},
		{"host.docker.internal over UDP from the default bridge and a user network", func(t *testing.T) {
			for _, network := range []string{"bridge", "hsnet"} {
				if out := probe(t, "--network", network, "hostprobe:e2e", "/hostprobe", "-udp", udpAddr("host.docker.internal"), "-msg", "hi from "+network); out != "host echo: hi from "+network+"\n" {
					t.Errorf("%s: got %q", network, out)
				}
			}
		}},
		{"a closed host port is refused", func(t *testing.T) {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			closed := l.Addr().(*net.TCPAddr).Port
			l.Close()
			r := run(t, 2*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "hostprobe:e2e", "/hostprobe", "-get", "http://host.docker.internal:"+strconv.Itoa(closed)+"/")
			if r.code == 0 {
				t.Errorf("GET of a closed host port succeeded: %q", r.stdout)
			}
		}},
		{"--add-host NAME:host-gateway", func(t *testing.T) {
			hosts := probe(t, "--add-host", "hgw:host-gateway", "hostprobe:e2e", "/hostprobe", "-get", url("hgw"))
			if hosts != "hello from the host\n" {
				t.Errorf("GET through hgw: %q", hosts)
			}
		}},
		{"DNS of a host-only name through the host's resolver", func(t *testing.T) {
			addHostsEntry(t, hostOnlyIP+" "+hostOnlyName)
			for _, net := range []string{"bridge", "hsnet"} {
				out := probe(t, "--network", net, "hostprobe:e2e", "/hostprobe", "-dns", hostOnlyName)
				t.Logf("network %s: DNS answers and times (first, then two more):\n%s", net, out)
				if !strings.Contains(out, hostOnlyIP) {
					t.Errorf("network %s: %s resolved to %q, want %s", net, hostOnlyName, out, hostOnlyIP)
				}
			}
			// The guest itself resolves through the host too.
			switch r := run(t, time.Minute, "", env.bin, "shell", name, "--", "getent", "hosts", hostOnlyName); {
			case r.code == 127:
				t.Log("the guest has no getent; its own resolution is not checked")
			case !strings.Contains(r.stdout, hostOnlyIP):
				t.Errorf("guest getent hosts %s: exit %d, %q %q", hostOnlyName, r.code, r.stdout, r.stderr)
			}
		}},
		{"file events in a container watching a bind mount", func(t *testing.T) {
			fileEvents(t, ctxName)
		}},
		{"host access off refuses", func(t *testing.T) {
			machine(t, "stop", name)
			setConfig(t, name, "disable_host_access", true)
			machine(t, "start", name)
			r := run(t, 2*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "hostprobe:e2e", "/hostprobe", "-get", url("host.docker.internal"))
			if r.code == 0 {
				t.Errorf("host access off, yet GET through host.docker.internal returned %q", r.stdout)
			}
			r = run(t, 2*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "hostprobe:e2e", "/hostprobe", "-get", url("192.168.65.254"))
			if r.code == 0 {
				t.Errorf("host access off, yet GET of the gateway address returned %q", r.stdout)
			}
			r = run(t, 2*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "hostprobe:e2e", "/hostprobe", "-udp", udpAddr("192.168.65.254"), "-msg", "off")
			if r.code == 0 {
				t.Errorf("host access off, yet a UDP datagram to the gateway address got %q", r.stdout)
			}
			// DNS through the host stays on (the DNS step's hosts entry ended with it).
			addHostsEntry(t, hostOnlyIP+" "+hostOnlyName)
			if out := probe(t, "hostprobe:e2e", "/hostprobe", "-dns", hostOnlyName); !strings.Contains(out, hostOnlyIP) {
				t.Errorf("host access off: DNS of %s: %q", hostOnlyName, out)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			break
		}
	}
	machine(t, "stop", "--force", name)
}

// hostProbeRootfs is an image of just the hostprobe helper.
func hostProbeRootfs(t testing.TB) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hostprobe")
	build := exec.Command("go", "build", "-o", bin, "./hostprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+hostArch())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hostprobe: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(bin)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	addFile(tw, "hostprobe", b, 0o755)
	tw.Close()
	return buf.Bytes()
}

// addHostsEntry appends line to the host's /etc/hosts, keeping a backup, and restores the
// file when the test ends.
func addHostsEntry(t *testing.T, line string) {
	t.Helper()
	orig, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatalf("the host's /etc/hosts: %v", err)
	}
	backup := filepath.Join(filepath.Dir(env.home), "hosts.backup")
	if err := os.WriteFile(backup, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile("/etc/hosts", orig, 0o644); err != nil {
			t.Errorf("restore /etc/hosts (a copy is in %s): %v", backup, err)
		}
	})
	add := string(orig)
	if !strings.HasSuffix(add, "\n") {
		add += "\n"
	}
	// Written in place: /etc/hosts is often a bind mount that a rename cannot replace.
	if err := os.WriteFile("/etc/hosts", []byte(add+line+"\n"), 0o644); err != nil {
		t.Fatalf("add %q to /etc/hosts (needs root): %v", line, err)
	}
}

// setConfig sets one field of a stopped machine's config.json.
func setConfig(t *testing.T, name, key string, value any) {
	t.Helper()
	p := filepath.Join(env.home, name, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	if b, err = json.MarshalIndent(m, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fileEvents runs a container that prints inotify events under a bind-mounted shared folder,
// changes the folder on the host (create, write, rename, delete) and prints how long each
// change took to show up in the container's output.
func fileEvents(t *testing.T, ctxName string) {
	dir := filepath.Join(env.shared, "watched")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	docker(t, ctxName, "", "run", "-d", "--name", "watcher", "-v", dir+":/w", "hostprobe:e2e", "/hostprobe", "-watch", "/w")
	defer run(t, time.Minute, "", "docker", "--context", ctxName, "rm", "-f", "watcher")
	logs := exec.Command("docker", "--context", ctxName, "logs", "-f", "watcher")
	logs.Env = cmdEnv()
	out, err := logs.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := logs.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { logs.Process.Kill(); logs.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// next waits up to d for a line that satisfies ok.
	next := func(d time.Duration, ok func(string) bool) (string, bool) {
		deadline := time.After(d)
		for {
			select {
			case l, open := <-lines:
				if !open {
					return "", false
				}
				if ok(l) {
					return l, true
				}
			case <-deadline:
				return "", false
			}
		}
	}
	drain := func() {
		for {
			select {
			case <-lines:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	if _, ok := next(time.Minute, func(l string) bool { return l == "ready" }); !ok {
		t.Fatal("the watcher did not start")
	}
	// The guest learns of the bind mount from the engine's start event and asks the host to
	// watch it; until then host changes have no guest event. Poke until one arrives.
	warm := filepath.Join(dir, "warm-up")
	start := time.Now()
	for i := 0; ; i++ {
		os.WriteFile(warm, []byte(strconv.Itoa(i)), 0o644)
		if _, ok := next(500*time.Millisecond, func(l string) bool { return strings.Contains(l, "warm-up") }); ok {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("no file event reached the container within a minute of its start")
		}
	}
	t.Logf("first event %.0f ms after the container printed ready (engine event, watch set-up)", float64(time.Since(start).Milliseconds()))
	drain()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	for _, step := range []struct {
		op   string
		do   func() error
		want func(string) bool
	}{
		{"create", func() error { return os.WriteFile(a, []byte("one"), 0o644) }, func(l string) bool { return strings.HasSuffix(l, " a.txt") }},
		{"write", func() error {
			f, err := os.OpenFile(a, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			f.WriteString(" two")
			return f.Close()
		}, func(l string) bool { return strings.HasSuffix(l, " a.txt") }},
		{"rename", func() error { return os.Rename(a, b) }, func(l string) bool { return strings.HasSuffix(l, " b.txt") }},
		// A removed file has nothing left to touch: the folder itself reports the change.
		{"delete", func() error { return os.Remove(b) }, func(l string) bool { return strings.HasSuffix(l, " ") }},
	} {
		t0 := time.Now()
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.op, err)
		}
		l, ok := next(5*time.Second, step.want)
		if !ok {
			t.Errorf("%s on the host: no matching inotify event in the container within 5 s", step.op)
			continue
		}
		t.Logf("%s: the container saw %q %.1f ms after the host change (measured on the host, through docker logs -f)", step.op, l, float64(time.Since(t0).Microseconds())/1000)
		drain()
	}
	// A burst is coalesced: 200 writes to one file are far fewer events.
	for i := 0; i < 200; i++ {
		os.WriteFile(a, []byte(strconv.Itoa(i)), 0o644)
	}
	n := 0
	for {
		if _, ok := next(time.Second, func(l string) bool { return strings.HasSuffix(l, " a.txt") }); !ok {
			break
		}
		n++
	}
	t.Logf("a burst of 200 host writes to one file: %d events in the container", n)
	if n == 0 || n >= 200 {
		t.Errorf("a burst of 200 writes gave %d events, want at least one and far fewer than 200", n)
	}
}
