// Package cmdline is the guest's end of the boot contract: it reads /proc/cmdline with the
// contract's one decoder (guestagent/api/bootparams) and sets the clock from the host's
// boot-time reading. Both boot stages use it.
package cmdline

import (
	"fmt"
	"os"
	"time"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

// ReadProc decodes /proc/cmdline. On a decoding error it also returns what it could read.
func ReadProc() (bootparams.Params, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return bootparams.Params{}, fmt.Errorf("kernel command line: %w", err)
	}
	return bootparams.Decode(string(b))
}

// BootClock says what the wall clock should be set to at boot, given the host's clock when
// it made the command line (host), the guest's clock now and the time since the kernel
// started (uptime). The host's reading plus uptime is a lower bound of the true time (the
// host read its clock before the kernel started), so a clock behind it is wrong and is moved
// forward; a clock at or ahead of it is left for the host's time sync to refine.
func BootClock(host, now time.Time, uptime time.Duration) (time.Time, bool) {
	if host.IsZero() {
		return time.Time{}, false
	}
	want := host.Add(uptime)
	if !now.Before(want) {
		return time.Time{}, false
	}
	return want, true
}
