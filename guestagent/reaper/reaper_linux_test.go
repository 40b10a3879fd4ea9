package reaper

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func watch(t *testing.T, r *Reaper) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestExitCodes(t *testing.T) {
	r := New()
	watch(t, r)
	cases := []struct {
		script string
		code   int
		sig    syscall.Signal
	}{
		{"exit 0", 0, 0},
		{"exit 3", 3, 0},
		{"kill -TERM $$", 128 + 15, syscall.SIGTERM},
		{"kill -KILL $$", 128 + 9, syscall.SIGKILL},
	}
	for _, c := range cases {
		st, err := r.Run(context.Background(), exec.Command("sh", "-c", c.script))
		if err != nil {
			t.Fatal(err)
		}
		if st.Code != c.code || st.Signal != c.sig {
			t.Errorf("sh -c %q: %+v, want code %d signal %v", c.script, st, c.code, c.sig)
		}
	}
}

// TestManyFastChildren starts children that exit at once from many goroutines: each waiter
// must get its own child's status even when the child is gone before Start returns.
func TestManyFastChildren(t *testing.T) {
	r := New()
	watch(t, r)
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code := i % 7
			cmd := exec.Command("sh", "-c", "exit "+itoa(code))
			st, err := r.Run(context.Background(), cmd)
			if err != nil || st.Code != code || st.Pid <= 0 {
				errs <- "child " + itoa(i) + ": " + st.String()
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestOrphansAreReaped makes the test process a subreaper, as PID 1 is, so a grandchild whose
// parent exits is re-parented to it; the reaper must collect it and report it as an orphan.
// The order of exits is forced, so the result does not depend on scheduling.
func TestOrphansAreReaped(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("subreaper: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	orphans := make(chan Status, 4)
	r := New()
	r.Orphan = func(st Status) { orphans <- st }
	watch(t, r)
	// The grandchild waits on a pipe until its parent is gone: if it exited first, sh could
	// reap it itself and it would never be an orphan (the test failed 2 runs in 3 so).
	gate, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	defer release.Close()
	cmd := exec.Command("sh", "-c", "sh -c 'read x <&3; exit 5' >/dev/null 2>&1 & echo $!")
	cmd.ExtraFiles = []*os.File{gate}
	out, err := r.Output(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	// Output returned: the parent has exited and been reaped, so the grandchild is ours now.
	release.Write([]byte("go\n"))
	release.Close()
	select {
	case st := <-orphans:
		if st.Code != 5 || itoa(st.Pid) != strings.TrimSpace(string(out)) {
			t.Fatalf("orphan %+v, want pid %s code 5", st, out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("orphan not reaped")
	}
}

func TestOutput(t *testing.T) {
	r := New()
	watch(t, r)
	out, err := r.Output(context.Background(), exec.Command("sh", "-c", "echo out; echo err >&2"))
	if err != nil || string(out) != "out\nerr\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	_, err = r.Output(context.Background(), exec.Command("sh", "-c", "echo bad disk >&2; exit 2"))
	if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "bad disk") {
		t.Fatalf("failing Output: err = %v", err)
	}
	_, err = r.Output(context.Background(), exec.Command("/nonexistent/tool"))
	if err == nil {
		t.Fatal("missing command: no error")
	}
}

func TestRunCancelKills(t *testing.T) {
	r := New()
	watch(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	st, err := r.Run(ctx, exec.Command("sleep", "30"))
	if err == nil || st.Signal != syscall.SIGKILL || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled run: %+v, %v after %v", st, err, time.Since(start))
	}
}

func TestStartCmdRejectsCopyingStdio(t *testing.T) {
	cmd := exec.Command("true")
	cmd.Stdout = &bytes.Buffer{}
	if _, err := New().StartCmd(cmd); err == nil {
		t.Fatal("StartCmd accepted a bytes.Buffer stdout")
	}
	if cmd.Process != nil {
		t.Fatal("process started anyway")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestNoDescriptorLeak runs many commands: os.Process keeps a pidfd until it is waited for or
// released, and the reaper (not exec.Cmd.Wait) collects the children.
func TestNoDescriptorLeak(t *testing.T) {
	r := New()
	watch(t, r)
	// A finalizer would close a forgotten pidfd at the next collection; keep the collector
	// out of it so only an explicit release counts.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	count := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents)
	}
	before := count()
	for i := 0; i < 50; i++ {
		if _, err := r.Run(context.Background(), exec.Command("true")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Second)
	for count() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("open descriptors %d -> %d after 50 commands", before, count())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
