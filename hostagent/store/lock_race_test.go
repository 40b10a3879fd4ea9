package store

import (
	"path/filepath"
	"sync"
	"testing"
)

// A liveness check must never make a starting agent's TryLock fail: `machine status` run at
// the wrong moment used to make the agent exit with "already running".
func TestHeldNeverRefusesTryLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.lock")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				Held(p)
			}
		}
	}()
	refused := 0
	for i := 0; i < 2000; i++ {
		l, err := TryLockLive(p)
		if err != nil {
			refused++
			continue
		}
		if !Held(p) {
			t.Fatal("Held = false while the lock is held")
		}
		l.Unlock()
	}
	close(stop)
	wg.Wait()
	if refused != 0 {
		t.Fatalf("%d of 2000 TryLock calls refused while another goroutine only checked liveness", refused)
	}
}

// Concurrent liveness checks never see each other as a holder.
func TestHeldProbesDoNotSeeEachOther(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.lock")
	l, err := TryLockLive(p) // make the liveness file exist, then free it
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := 0
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if Held(p) {
					mu.Lock()
					seen++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if seen != 0 {
		t.Fatalf("Held = true %d times with no holder", seen)
	}
}
