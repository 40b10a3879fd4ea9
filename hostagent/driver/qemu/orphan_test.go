package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// standInEnv makes the test binary a stand-in for QEMU: a process that runs until killed.
const standInEnv = "QEMU_ORPHAN_TEST_STAND_IN"

func TestStandInProcess(t *testing.T) {
	if os.Getenv(standInEnv) != "1" {
		t.Skip("only runs as the stand-in child of the orphan tests")
	}
	time.Sleep(time.Hour)
}

// startStandIn runs a real child process in place of QEMU and returns it with a channel that
// is closed once it has exited and been reaped.
func startStandIn(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStandInProcess$")
	cmd.Env = append(os.Environ(), standInEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd, done
}

func running(pid int) bool {
	_, err := processStart(pid)
	return err == nil
}

func TestEndOrphanKillsTheRecordedProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startStandIn(t)
	if err := writeRecord(dir, cmd.Process.Pid, Host{QMPSocket: filepath.Join(dir, "qmp.sock")}); err != nil {
		t.Fatal(err)
	}
	o, err := EndOrphan(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if o == nil || o.Pid != cmd.Process.Pid || o.Clean {
		t.Fatalf("EndOrphan = %+v, want the stand-in (pid %d) killed", o, cmd.Process.Pid)
	}
	if running(cmd.Process.Pid) {
		t.Error("the stand-in still runs")
	}
	if _, err := os.Stat(filepath.Join(dir, RecordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left behind: %v", err)
	}
	// A second call finds nothing to do.
	if o, err := EndOrphan(context.Background(), dir, 0); o != nil || err != nil {
		t.Errorf("second EndOrphan = %+v, %v", o, err)
	}
}

func TestEndOrphanSparesAProcessThatReusedThePid(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startStandIn(t)
	r := record{Pid: cmd.Process.Pid, Start: "another-process-start-time"}
	b, _ := json.Marshal(r)
	os.WriteFile(filepath.Join(dir, RecordFile), b, 0o600)
	o, err := EndOrphan(context.Background(), dir, 0)
	if o != nil || err != nil {
		t.Fatalf("EndOrphan = %+v, %v: want nothing ended", o, err)
	}
	if !running(cmd.Process.Pid) {
		t.Error("a process that only shares the recorded pid was killed")
	}
	if _, err := os.Stat(filepath.Join(dir, RecordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale record kept: %v", err)
	}
}

func TestEndOrphanForgetsAnExitedProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, done := startStandIn(t)
	if err := writeRecord(dir, cmd.Process.Pid, Host{QMPSocket: filepath.Join(dir, "qmp.sock")}); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	<-done
	o, err := EndOrphan(context.Background(), dir, 0)
	if o != nil || err != nil {
		t.Fatalf("EndOrphan = %+v, %v: want nothing ended", o, err)
	}
	if _, err := os.Stat(filepath.Join(dir, RecordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale record kept: %v", err)
	}
}

func TestEndOrphanNoRecord(t *testing.T) {
	if o, err := EndOrphan(context.Background(), t.TempDir(), 0); o != nil || err != nil {
		t.Fatalf("EndOrphan = %+v, %v", o, err)
	}
}

func TestEndOrphanUnreadableRecord(t *testing.T) {
	for _, content := range []string{"not json", `{"pid": 0, "start": "x"}`, `{"pid": 12}`} {
		dir := t.TempDir()
		path := filepath.Join(dir, RecordFile)
		os.WriteFile(path, []byte(content), 0o600)
		_, err := EndOrphan(context.Background(), dir, 0)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("record %q: err = %v, want one naming %s", content, err, path)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("record %q was removed: %v", content, err)
		}
	}
}

// powerButton serves QMP on a unix socket in dir; system_powerdown calls press.
func powerButton(t *testing.T, dir string, press func()) string {
	path := filepath.Join(dir, "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var m struct{ Execute string }
			json.Unmarshal(sc.Bytes(), &m)
			c.Write([]byte(`{"return": {}}` + "\n"))
			if m.Execute == "system_powerdown" {
				press()
			}
		}
	}()
	return path
}

func TestEndOrphanPowersOffCleanlyFirst(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startStandIn(t)
	host := Host{QMPSocket: powerButton(t, dir, func() { cmd.Process.Kill() })} // the guest powers off
	if err := writeRecord(dir, cmd.Process.Pid, host); err != nil {
		t.Fatal(err)
	}
	o, err := EndOrphan(context.Background(), dir, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if o == nil || !o.Clean {
		t.Fatalf("EndOrphan = %+v, want a clean power-off", o)
	}
	if running(cmd.Process.Pid) {
		t.Error("the stand-in still runs")
	}
}

func TestEndOrphanKillsWhenThePowerButtonIsIgnored(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startStandIn(t)
	pressed := make(chan struct{}, 1)
	host := Host{QMPSocket: powerButton(t, dir, func() { pressed <- struct{}{} })}
	if err := writeRecord(dir, cmd.Process.Pid, host); err != nil {
		t.Fatal(err)
	}
	o, err := EndOrphan(context.Background(), dir, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-pressed:
	default:
		t.Error("the power button was not pressed first")
	}
	if o == nil || o.Clean || running(cmd.Process.Pid) {
		t.Fatalf("EndOrphan = %+v, running %v: want the stand-in killed", o, running(cmd.Process.Pid))
	}
}

func TestRemoveRecordKeepsAnotherProcesssRecord(t *testing.T) {
	dir := t.TempDir()
	if err := writeRecord(dir, os.Getpid(), Host{QMPSocket: "/q"}); err != nil {
		t.Fatal(err)
	}
	removeRecord(dir, os.Getpid()+1)
	if _, err := os.Stat(filepath.Join(dir, RecordFile)); err != nil {
		t.Fatalf("another process's record was removed: %v", err)
	}
	removeRecord(dir, os.Getpid())
	if _, err := os.Stat(filepath.Join(dir, RecordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("own record kept: %v", err)
	}
}

func TestProcessStartIdentifiesAProcess(t *testing.T) {
	a, err := processStart(os.Getpid())
	if err != nil || a == "" {
		t.Fatalf("processStart(self) = %q, %v", a, err)
	}
	if b, _ := processStart(os.Getpid()); b != a {
		t.Errorf("processStart(self) changed: %q then %q", a, b)
	}
	cmd, _ := startStandIn(t)
	if c, err := processStart(cmd.Process.Pid); err != nil || c == a {
		t.Errorf("processStart(child) = %q, %v: want a start time other than ours (%q)", c, err, a)
	}
}
