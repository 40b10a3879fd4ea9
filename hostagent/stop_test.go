package hostagent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/hostagent/driver"
)

// A kill that fails, or never answers, must not leave Run waiting on the VM forever: the stop
// ends with an error naming the machine, an error event and a log line.
func TestKillThatDoesNotStopTheVMIsReported(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*fakeVM)
		want string
	}{
		{"kill fails", func(vm *fakeVM) { vm.killErr = errors.New("kill: operation not permitted") }, "the kill failed: kill: operation not permitted"},
		{"kill hangs", func(vm *fakeVM) { vm.killBlock = make(chan struct{}) }, "the hypervisor did not answer the kill"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, cfg := testMachine(t)
			vm := newFakeVM()
			tt.set(vm)
			if vm.killBlock != nil {
				defer close(vm.killBlock)
			}
			r := startAgent(t, m, cfg, vm)
			defer vm.powerOff("test cleanup")
			if err := r.c.Stop(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-r.done:
				if err == nil || !strings.Contains(err.Error(), `machine "t": the VM did not stop`) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Run = %v, want the stop failure (%s)", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run is still waiting on a VM its kill did not stop")
			}
			b, _ := os.ReadFile(m.EventsPath())
			if !bytes.Contains(b, []byte(`"type":"error"`)) || !bytes.Contains(b, []byte(tt.want)) {
				t.Errorf("no error event for the failed kill in %s", b)
			}
			if bytes.Contains(b, []byte(`"type":"stopped"`)) {
				t.Errorf("a VM that did not stop was reported stopped: %s", b)
			}
		})
	}
}

// A forced stop while a clean one waits on an unresponsive guest kills at once, and says so.
func TestForceEscalatesAStopUnderWay(t *testing.T) {
	m, cfg := testMachine(t)
	vm := newFakeVM()
	vm.ignoreShutdown, vm.ignoreACPI = true, true
	r := startAgentWith(t, m, cfg, vm, Options{GuestStopTimeout: time.Hour, ACPITimeout: time.Hour})
	if err := r.c.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, r, EventStopping)
	if err := r.c.Stop(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a forced stop waited out the clean stop's timeout")
	}
	b, _ := os.ReadFile(m.EventsPath())
	if vm.stoppedBy() != "kill" || !bytes.Contains(b, []byte(`"stop_method":"kill"`)) {
		t.Errorf("stopped by %q; events %s", vm.stoppedBy(), b)
	}
}

func waitEvent(t *testing.T, r *running, typ string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found := false
	r.c.Events(ctx, func(e Event) bool {
		found = e.Type == typ
		return !found
	})
	if !found {
		t.Fatalf("no %s event", typ)
	}
}

var _ driver.Driver = (*fakeVM)(nil)
