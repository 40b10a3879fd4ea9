//go:build e2e

package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAutoPause boots a machine that pauses after 5 s idle and checks that a paused machine
// answers the Docker CLI and `machine shell` (each resumes it) and pauses again later, that a
// running container keeps it awake, that `machine set` turns auto-pause off and on while it
// runs, and that a paused machine stops cleanly.
func TestAutoPause(t *testing.T) {
	const name = "autopause"
	const ctxName = "machine-autopause"
	defer dumpLogs(t, name)
	machine(t, "create", name, "--image", latestImage(t, hostArch()), "--share=", "--auto-pause-after", "5s")
	defer machine(t, "rm", "--force", name)
	machine(t, "start", name)

	state := func() string {
		return strings.TrimSpace(machine(t, "status", name, "--format", "{{.State}}"))
	}
	waitEvents(t, name, "paused", 1, 2*time.Minute)
	if s := state(); s != "paused" {
		t.Errorf("status after the pause event: %q, want paused", s)
	}
	// Longer than the guest kernel's soft-lockup threshold (20 s; the image panics on a soft
	// lockup): a pause must not look like one.
	time.Sleep(25 * time.Second)
	if out := docker(t, ctxName, "", "version", "--format", "{{.Server.Version}}"); strings.TrimSpace(out) == "" {
		t.Errorf("docker version on a paused machine printed %q", out)
	}
	if n := len(eventMessages(name, "resumed")); n != 1 {
		t.Errorf("%d resumed events after docker version, want 1", n)
	}
	waitEvents(t, name, "paused", 2, 2*time.Minute)
	if out := machine(t, "shell", name, "--", "echo", "hi"); out != "hi\n" {
		t.Errorf("machine shell on a paused machine printed %q", out)
	}
	if n := len(eventMessages(name, "resumed")); n != 2 {
		t.Errorf("%d resumed events after machine shell, want 2", n)
	}
	// The guest clock is right after a resume (the host pushes it).
	time.Sleep(time.Second)
	var guestNow int64
	fmt.Sscan(machine(t, "shell", name, "--", "date", "+%s"), &guestNow)
	if d := time.Since(time.Unix(guestNow, 0)); d > 3*time.Second || d < -3*time.Second {
		t.Errorf("guest clock is %v off the host's after a resume", d.Round(time.Second))
	}

	// A running container keeps the machine awake for many idle periods.
	docker(t, ctxName, string(busyboxRootfs(t)), "import", "-", "busybox:autopause")
	docker(t, ctxName, "", "run", "-d", "--name", "sleeper", "busybox:autopause", "sleep", "3600")
	pausesBefore := len(eventMessages(name, "paused"))
	time.Sleep(20 * time.Second)
	if n := len(eventMessages(name, "paused")); n != pausesBefore {
		t.Errorf("the machine paused with a container running (%d pauses, had %d)", n, pausesBefore)
	}
	docker(t, ctxName, "", "rm", "-f", "sleeper")
	waitEvents(t, name, "paused", pausesBefore+1, 2*time.Minute)

	// `machine set --auto-pause=false` on the paused, running machine resumes it and keeps it
	// awake; an idle time turns it on again, without a restart.
	if out := machine(t, "set", name, "--auto-pause=false"); !strings.Contains(out, "auto-pause after 5s -> off (now)") {
		t.Errorf("set --auto-pause=false on a running machine printed %q", out)
	}
	if s := state(); s != "running" {
		t.Errorf("status after auto-pause went off on a paused machine: %q, want running", s)
	}
	pausesOff := len(eventMessages(name, "paused"))
	time.Sleep(20 * time.Second)
	if n := len(eventMessages(name, "paused")); n != pausesOff {
		t.Errorf("the machine paused with auto-pause off (%d pauses, had %d)", n, pausesOff)
	}
	if out := machine(t, "status", name); !strings.Contains(strings.Join(strings.Fields(out), " "), "Auto-pause: off") {
		t.Errorf("status with auto-pause off:\n%s", out)
	}
	machine(t, "set", name, "--auto-pause-after", "5s")
	waitEvents(t, name, "paused", pausesOff+1, 2*time.Minute)

	// A paused machine stops cleanly (the guest is resumed to shut down).
	machine(t, "stop", name)
	if msgs := eventMessages(name, "stopped"); len(msgs) == 0 || !strings.Contains(msgs[len(msgs)-1], "guest") {
		t.Errorf("stop of a paused machine: %v, want a clean guest shutdown (see %s)", msgs, filepath.Join(env.home, name, "events.jsonl"))
	}
}
