package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/machine-run/machine/internal/atomicfile"
)

// A QEMU must not outlive its host agent: it holds the data disk, and nothing else would
// ever stop it. Linux ends it with a parent-death signal and Windows with a kill-on-close job
// object, but macOS has neither, so a host agent killed there (SIGKILL, a crash) leaves QEMU
// running. The host agent therefore records the QEMU it runs, by pid and the OS's start time
// of that process (a pid alone may since belong to another program), in the machine folder.
// The next host agent, before it boots anything, and `machine stop` or `rm` of a machine
// whose agent is gone, end the recorded QEMU if that exact process still runs. The record is
// kept on every OS, so the mechanism is exercised on Linux with the parent-death signal off.

// RecordFile is the file in the machine folder that names the running QEMU process.
const RecordFile = "qemu.pid"

// record identifies one QEMU process and says how to ask it to power off.
type record struct {
	Pid int `json:"pid"`
	// Start is the OS's start time of the process (see processStart); with Pid it
	// identifies the process.
	Start string `json:"start"`
	// QMP is where the process serves QMP: "unix:PATH" or "tcp:HOST:PORT".
	QMPNetwork string `json:"qmp_network,omitempty"`
	QMPAddr    string `json:"qmp_addr,omitempty"`
}

// errGone is returned by processStart for a pid that no longer runs (or is a zombie).
var errGone = errors.New("process is not running")

// writeRecord records the started QEMU in dir.
func writeRecord(dir string, pid int, host Host) error {
	start, err := processStart(pid)
	if err != nil {
		return fmt.Errorf("qemu: record QEMU (pid %d): %w", pid, err)
	}
	r := record{Pid: pid, Start: start, QMPNetwork: "unix", QMPAddr: host.QMPSocket}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, RecordFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("qemu: record QEMU (pid %d): %w", pid, err)
	}
	return nil
}

// removeRecord removes the record of pid, leaving a record of another process alone.
func removeRecord(dir string, pid int) {
	if r, err := readRecord(dir); err == nil && r != nil && r.Pid == pid {
		os.Remove(filepath.Join(dir, RecordFile))
	}
}

func readRecord(dir string) (*record, error) {
	path := filepath.Join(dir, RecordFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Pid <= 0 || r.Start == "" {
		return nil, fmt.Errorf("qemu: record %s is unreadable (%q): if no QEMU of this machine runs, remove the file", path, b)
	}
	return &r, nil
}

// Orphan is how EndOrphan ended a QEMU left running by a host agent that was killed.
type Orphan struct {
	Pid int
	// Clean is true when the guest powered off on the ACPI power button within the grace
	// period; false when QEMU was killed.
	Clean bool
}

// killWait bounds the wait for a killed QEMU to be gone.
const killWait = 10 * time.Second

// EndOrphan ends the QEMU recorded in the machine folder dir if that process still runs, and
// removes the record. With grace > 0 it first presses the ACPI power button over QMP (the
// guest agent then shuts down cleanly) and waits up to grace; then it kills. It returns nil
// when no recorded QEMU runs. The caller must hold the machine's host-agent lock, so the
// recorded QEMU cannot belong to a live host agent.
func EndOrphan(ctx context.Context, dir string, grace time.Duration) (*Orphan, error) {
	r, err := readRecord(dir)
	if err != nil || r == nil {
		return nil, err
	}
	start, err := processStart(r.Pid)
	if errors.Is(err, errGone) || (err == nil && start != r.Start) {
		// Gone, or the pid now belongs to another process: nothing to end.
		os.Remove(filepath.Join(dir, RecordFile))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("qemu: check the recorded QEMU (pid %d): %w", r.Pid, err)
	}
	o := &Orphan{Pid: r.Pid}
	if grace > 0 && r.QMPAddr != "" {
		qctx, cancel := context.WithTimeout(ctx, min(grace, 5*time.Second))
		err := qmpCommand(qctx, r.QMPNetwork, r.QMPAddr, "system_powerdown")
		cancel()
		if err == nil && waitGone(ctx, r.Pid, r.Start, grace) == nil {
			o.Clean = true
		}
	}
	if !o.Clean {
		if err := killProcess(r.Pid, r.Start); err != nil {
			return nil, fmt.Errorf("qemu: end the QEMU (pid %d) left running by a killed host agent: %w", r.Pid, err)
		}
		if err := waitGone(ctx, r.Pid, r.Start, killWait); err != nil {
			return nil, fmt.Errorf("qemu: end the QEMU (pid %d) left running by a killed host agent: %w", r.Pid, err)
		}
	}
	os.Remove(filepath.Join(dir, RecordFile))
	return o, nil
}

// killProcess kills pid if it is still the process that started at start.
func killProcess(pid int, start string) error {
	if s, err := processStart(pid); err != nil || s != start {
		return nil // already gone
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// waitGone waits until the process pid that started at start no longer runs.
func waitGone(ctx context.Context, pid int, start string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := processStart(pid)
		if errors.Is(err, errGone) || (err == nil && s != start) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still running after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
