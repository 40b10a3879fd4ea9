package logrotate

import (
	"fmt"
	"os"
	"sync"
)

// Capped keeps a log that one process appends to for a long time (the host agent's, one file
// per boot) under Max bytes without starting another file, which would shift the boot
// generations: a write that would take the file past Max first cuts it back to its first
// Head bytes (the start of the boot, where failures are explained) and a line saying how much
// was dropped, then appends. So the file holds the boot's start and its most recent output.
// F must be opened for appending (O_APPEND), as every writer of the file must be; a file
// that is not a regular file (a terminal) is written through untouched.
type Capped struct {
	F         *os.File
	Max, Head int64

	mu sync.Mutex
}

// Write implements io.Writer.
func (c *Capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fi, err := c.F.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > c.Head && fi.Size()+int64(len(p)) > c.Max {
		if err := c.F.Truncate(c.Head); err == nil {
			fmt.Fprintf(c.F, "\n... %d bytes of this log dropped here (it is kept under %d bytes: the start of the boot and the latest output) ...\n", fi.Size()-c.Head, c.Max)
		}
	}
	return c.F.Write(p)
}
