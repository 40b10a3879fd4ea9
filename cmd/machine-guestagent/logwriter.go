package main

import (
	"io"
	"os"
	"sync"
)

// logWriter copies every log line to the console and, once the data disk is up, to a file
// on it. Lines written before the file exists are buffered (bounded) and replayed into it, so
// the persistent log starts at the beginning of the boot.
type logWriter struct {
	mu      sync.Mutex
	console io.Writer
	file    io.WriteCloser
	early   []byte
}

const maxEarly = 1 << 20

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.console.Write(p)
	if w.file != nil {
		w.file.Write(p)
	} else if len(w.early)+len(p) <= maxEarly {
		w.early = append(w.early, p...)
	}
	return n, err
}

// SetFile starts copying to f, beginning with the buffered early lines.
func (w *logWriter) SetFile(f io.WriteCloser) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f.Write(w.early)
	w.early = nil
	w.file = f
}

// CloseFile stops copying to the file (before the data disk is unmounted).
func (w *logWriter) CloseFile() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file != nil {
		if f, ok := w.file.(*os.File); ok {
			f.Sync()
		}
		w.file.Close()
		w.file = nil
	}
}
