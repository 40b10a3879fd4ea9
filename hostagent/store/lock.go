package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Lock is an exclusive advisory lock on a file; the OS drops it when the process dies, so a
// crash never leaves a machine locked.
//
// A lock taken with TryLockLive also holds an exclusive lock on a second file, path+".live",
// which is what Held probes, with a shared lock. Probing the lock itself would take it for an instant and make a
// starting agent's TryLock fail: `machine status` at the wrong moment stopped the agent. The
// probe never touches the first file, and concurrent probes never see each other.
type Lock struct {
	f, live *os.File
}

// liveSuffix names the file Held probes.
const liveSuffix = ".live"

// liveWait bounds how long TryLock waits for probes to let go of the liveness file. A probe
// holds it for microseconds; only a pathological stream of them could make TryLock give up.
const liveWait = 5 * time.Second

// ErrLocked is returned by TryLock when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// TryLock takes the lock at path or returns ErrLocked at once.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	ok, err := tryLock(f, false)
	if err != nil || !ok {
		f.Close()
		if err == nil {
			err = ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// TryLockLive is TryLock for a lock whose holder others check with Held (the host agent's).
func TryLockLive(path string) (*Lock, error) {
	l, err := TryLock(path)
	if err != nil {
		return nil, err
	}
	if l.live, err = lockLive(path + liveSuffix); err != nil {
		l.f.Close()
		return nil, err
	}
	return l, nil
}

// lockLive takes the liveness file exclusively. Only Held's shared probes can hold it (the
// caller holds the main lock), so it retries briefly rather than failing.
func lockLive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(liveWait)
	delay := 100 * time.Microsecond
	for {
		ok, err := tryLock(f, false)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			return f, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: liveness checks kept it busy for %s; try again", path, liveWait)
		}
		time.Sleep(delay)
		delay = min(delay*2, 10*time.Millisecond)
	}
}

// LockContext takes the lock at path, waiting until it is free or ctx ends.
func LockContext(ctx context.Context, path string) (*Lock, error) {
	delay := 10 * time.Millisecond
	for {
		l, err := TryLock(path)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	var err error
	if l.live != nil {
		err = l.live.Close()
	}
	return errors.Join(err, l.f.Close())
}

// Held reports whether some process holds the lock at path, taken with TryLockLive. It never takes that lock: it
// probes the liveness file with a shared lock, which only a holder's exclusive lock refuses.
func Held(path string) bool {
	f, err := os.Open(path + liveSuffix)
	if err != nil {
		return false // no holder has ever made it
	}
	defer f.Close()
	ok, err := tryLock(f, true)
	return err == nil && !ok
}

// ReadPid reads a pid file; it returns 0 when the file is missing or unreadable.
func ReadPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// ProcessAlive reports whether pid is a live process.
func ProcessAlive(pid int) bool { return processAlive(pid) }
