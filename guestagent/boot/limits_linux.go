package boot

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxOpenFiles caps the open-file limit PID 1 gives itself and every process it starts.
const maxOpenFiles = 1 << 20

// RaiseFileLimit lifts PID 1's open-file limit (the kernel starts init at 1024/4096) to the
// kernel's nr_open, at most maxOpenFiles. The engine and containers inherit it, as they do
// from systemd's LimitNOFILE, and the agent can hold thousands of forwarded connections.
func RaiseFileLimit() (uint64, error) {
	n := uint64(maxOpenFiles)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v < n {
			n = v
		}
	}
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		return n, nil
	}
	// Without CAP_SYS_RESOURCE (never the case for the guest's PID 1, but in a sandbox) the
	// hard limit cannot grow: raise the soft limit to it.
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
