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

// A guest that refuses its data disk must not be left idling: the VM is stopped, Run fails
// naming the phase, and the machine ends stopped with the error recorded.
func TestGuestBootFailureStopsTheVM(t *testing.T) {
	m, cfg := testMachine(t)
	vm := newFakeVM()
	vm.bootErr = errors.New("data disk /dev/vdb holds a foreign filesystem (xfs); refusing to use it")
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{Machine: m, Config: cfg,
			NewDriver:        func(driver.Config) (driver.Driver, error) { return vm, nil },
			GuestStopTimeout: 200 * time.Millisecond, ACPITimeout: 200 * time.Millisecond, KillTimeout: 200 * time.Millisecond})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "boot failed after phase agent") || !strings.Contains(err.Error(), "foreign filesystem") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		vm.powerOff("test cleanup")
		t.Fatal("Run still waits on a guest that failed to boot")
	}
	if vm.stoppedBy() == "" {
		t.Error("the VM was left running")
	}
	b, _ := os.ReadFile(m.EventsPath())
	if !bytes.Contains(b, []byte(`"type":"stopped"`)) || !bytes.Contains(b, []byte("boot failed after phase agent")) {
		t.Errorf("events %s", b)
	}
	if msg := LastError(m.EventsPath()); !strings.Contains(msg, "boot failed after phase agent") {
		t.Errorf("LastError (shown by status) = %q", msg)
	}
}

// A data disk that cannot be the machine's is caught before the VM boots, and not touched.
func TestWrongSizeDataDiskIsRefusedBeforeBoot(t *testing.T) {
	m, cfg := testMachine(t)
	if err := os.Truncate(m.DataDisk(), 0); err != nil {
		t.Fatal(err)
	}
	vm := newFakeVM()
	err := Run(context.Background(), Options{Machine: m, Config: cfg,
		NewDriver: func(driver.Config) (driver.Driver, error) { return vm, nil }})
	if err == nil || !strings.Contains(err.Error(), m.DataDisk()) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("Run with an empty data disk: %v", err)
	}
	if vm.link != nil {
		t.Error("the VM was started")
	}
	if fi, _ := os.Stat(m.DataDisk()); fi == nil || fi.Size() != 0 {
		t.Errorf("data disk changed: %v", fi)
	}
}
