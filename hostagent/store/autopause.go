package store

import (
	"fmt"
	"time"
)

// DefaultAutoPauseAfter is how long a machine idles (no container running, no connection
// open) before its CPUs are paused, unless its config says otherwise.
const DefaultAutoPauseAfter = 5 * time.Minute

// minAutoPauseAfter keeps a typo from pausing a machine between two commands of a script.
const minAutoPauseAfter = 2 * time.Second

// AutoPauseIdle is the idle time after which the host agent pauses the machine's CPUs, or 0
// when auto-pause is off. A config without the fields (machines made before auto-pause)
// gets the default: on, after DefaultAutoPauseAfter.
func (c *Config) AutoPauseIdle() time.Duration {
	if c.AutoPause != nil && !*c.AutoPause {
		return 0
	}
	if c.AutoPauseAfterSeconds > 0 {
		return time.Duration(c.AutoPauseAfterSeconds) * time.Second
	}
	return DefaultAutoPauseAfter
}

// SetAutoPause records whether the machine auto-pauses and after how long (whole seconds).
func (c *Config) SetAutoPause(on bool, after time.Duration) error {
	if on && after < minAutoPauseAfter {
		return fmt.Errorf("--auto-pause-after %v: must be at least %v (or turn it off with --auto-pause=false)", after, minAutoPauseAfter)
	}
	c.AutoPause = &on
	c.AutoPauseAfterSeconds = int(after.Round(time.Second) / time.Second)
	if after == DefaultAutoPauseAfter {
		c.AutoPauseAfterSeconds = 0 // follows the default if it changes
	}
	return nil
}
