package hostagent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machine-run/machine/hostagent/store"
)

// TestCrashMessageNamesThatBootsConsole: the hint says to start again, and the start it
// suggests rotates the console, so it names where that boot's console will be after it.
func TestCrashMessageNamesThatBootsConsole(t *testing.T) {
	m := &store.Machine{Name: "dev", Dir: t.TempDir()}
	if err := os.WriteFile(m.SerialLog(), []byte("[ 3.1] Kernel panic - not syncing: Fatal exception in interrupt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg := crashMessage(m, errors.New("exit status 1"))
	for _, want := range []string{
		"the guest kernel panicked",
		m.SerialLog() + " ",
		filepath.Join(m.Dir, "serial.log.1"),
		"machine logs dev --boot -1",
		"machine start dev",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("crash message %q lacks %q", msg, want)
		}
	}
}
