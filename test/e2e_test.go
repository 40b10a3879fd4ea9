//go:build e2e

package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// env is shared by every test: one MACHINE_HOME and one docker config for the run.
var env struct {
	bin          string // the machine binary
	home         string // MACHINE_HOME
	dockerConfig string // DOCKER_CONFIG
	shared       string // a host folder shared into the machines
}

func TestMain(m *testing.M) {
	env.bin = os.Getenv("MACHINE_BIN")
	if env.bin == "" {
		fmt.Fprintln(os.Stderr, "MACHINE_BIN is not set: run `make e2e`")
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp("", "machine-e2e-")
	if err != nil {
		panic(err)
	}
	env.home = filepath.Join(tmp, "home")
	env.dockerConfig = filepath.Join(tmp, "docker")
	env.shared = filepath.Join(tmp, "shared")
	os.MkdirAll(env.shared, 0o755)
	os.MkdirAll(env.dockerConfig, 0o700)
	code := m.Run()
	reportPanics()
	// Leave nothing running, whatever failed.
	if names, _ := os.ReadDir(env.home); names != nil {
		for _, n := range names {
			stop := exec.Command(env.bin, "stop", "--force", n.Name())
			stop.Env = cmdEnv()
			stop.Run()
		}
	}
	if code == 0 {
		os.RemoveAll(tmp)
	} else {
		fmt.Fprintf(os.Stderr, "e2e state kept in %s\n", tmp)
	}
	os.Exit(code)
}

func cmdEnv() []string {
	return append(os.Environ(), "MACHINE_HOME="+env.home, "DOCKER_CONFIG="+env.dockerConfig)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs a command with the test environment and returns its output and exit status.
func run(t testing.TB, timeout time.Duration, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = cmdEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %s: %v (stderr: %s)", name, strings.Join(args, " "), err, r.stderr)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %s (stdout: %s, stderr: %s)", name, strings.Join(args, " "), timeout, r.stdout, r.stderr)
	}
	return r
}

// machine runs the machine CLI and fails the test on a non-zero exit. A `start` whose boot
// ended in a guest kernel panic (see docker) is retried once.
func machine(t testing.TB, args ...string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if len(args) > 1 && args[0] == "start" {
			helperStarts.Add(1)
		}
		r := run(t, 15*time.Minute, "", env.bin, args...)
		if r.code == 0 {
			return r.stdout
		}
		if attempt == 1 && len(args) > 1 && args[0] == "start" && crashed(t, args[1]) {
			notePanic(args[1])
			t.Logf("machine %q crashed while booting; starting it again once\n%s%s", args[1], r.stdout, r.stderr)
			continue
		}
		t.Fatalf("machine %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
}

// docker runs the host's docker CLI against a machine's context. When a command fails because
// the machine crashed (a guest kernel panic under emulation, issue 11 point 10), the machine is
// started again and the command retried once.
func docker(t testing.TB, context string, stdin string, args ...string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r := run(t, 10*time.Minute, stdin, "docker", append([]string{"--context", context}, args...)...)
		if r.code == 0 {
			return r.stdout
		}
		name := strings.TrimPrefix(context, "machine-")
		if attempt == 1 && crashed(t, name) {
			notePanic(name)
			t.Logf("machine %q crashed during `docker %s`; starting it again and retrying once", name, strings.Join(args, " "))
			machine(t, "start", name)
			// A named container the crashed run created would make the retry a name conflict.
			if i := slices.Index(args, "--name"); len(args) > 0 && args[0] == "run" && i > 0 && i+1 < len(args) {
				run(t, time.Minute, "", "docker", "--context", context, "rm", "-f", args[i+1])
			}
			continue
		}
		t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
}

// crashed reports whether the machine's VM ended without being asked to. A command can fail
// a moment before the host agent records the crash and exits, so it waits a little for that.
func crashed(t testing.TB, name string) bool {
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(env.home, name, "events.jsonl"))
		if err == nil && strings.Contains(string(b), `"stop_method":"crash"`) &&
			strings.TrimSpace(run(t, time.Minute, "", env.bin, "status", name, "--format", "{{.State}}").stdout) == "stopped" {
			return true
		}
	}
	return false
}

// latestImage is the image `make image` built for arch.
func latestImage(t testing.TB, arch string) string {
	t.Helper()
	cache := os.Getenv("MACHINE_CACHE")
	if cache == "" {
		d, _ := os.UserCacheDir()
		cache = filepath.Join(d, "machine")
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(cache, "images", arch, "latest"))
	if err != nil {
		t.Fatalf("no %s image in the cache (run `make image`): %v", arch, err)
	}
	return dir
}

// dumpLogs prints a machine's logs when a test failed, for CI.
func dumpLogs(t *testing.T, name string) {
	if !t.Failed() {
		return
	}
	for _, f := range []string{"hostagent.log", "serial.log", "qemu.log"} {
		b, _ := os.ReadFile(filepath.Join(env.home, name, f))
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		t.Logf("==> %s <==\n%s", f, b)
	}
}

func hostArch() string { return runtime.GOARCH }

// The run's boots and guest kernel panics, as the helpers saw them (issue 11, point 10:
// every e2e run is a sample): starts through machine(), and crashes crashed() confirmed.
var (
	helperStarts atomic.Int64
	panicMu      sync.Mutex
	panicsSeen   []string // machine: console signature
)

// notePanic records a crash of machine name with its console's signature.
func notePanic(name string) {
	sig := panicSignature(readFile(filepath.Join(env.home, name, "serial.log")))
	panicMu.Lock()
	panicsSeen = append(panicsSeen, name+": "+sig)
	panicMu.Unlock()
}

// reportPanics prints how many starts the helpers made and which ended in a guest crash.
func reportPanics() {
	panicMu.Lock()
	defer panicMu.Unlock()
	fmt.Fprintf(os.Stderr, "e2e: %d machine starts through the helpers, %d guest crashes\n", helperStarts.Load(), len(panicsSeen))
	for _, p := range panicsSeen {
		fmt.Fprintf(os.Stderr, "e2e: crash: %s\n", p)
	}
}
