// Package logrotate keeps the last few generations of a log file: path is the current one,
// path.1 the one before, up to path.N. The host rotates the console and host-agent logs at
// each boot, so a crash's evidence survives the next start and an old boot's panic is never
// read as today's; Writer rotates by size, for logs that live across boots (the guest
// engine's).
package logrotate

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Rotate shifts path to path.1, path.1 to path.2 and so on, dropping path.keep; a missing
// generation is skipped. Afterwards path does not exist.
func Rotate(path string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("logrotate %s: keep %d: want at least 1", path, keep)
	}
	if err := os.Remove(Generation(path, keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logrotate: %w", err)
	}
	for g := keep - 1; g >= 0; g-- {
		err := os.Rename(Generation(path, g), Generation(path, g+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logrotate: %w", err)
		}
	}
	return nil
}

// Generation is the file of the boot n boots ago (0: the current one).
func Generation(path string, n int) string {
	if n == 0 {
		return path
	}
	return fmt.Sprintf("%s.%d", path, n)
}

// Writer appends to Path and keeps it under MaxBytes: a write that would take the file past
// the limit first rotates it (Rotate(Path, Keep)) and starts a new one, so at most
// (Keep+1)*MaxBytes stay on disk. It is safe for concurrent use; the file is opened on the
// first write and after each rotation, so a Writer can outlive the processes that feed it.
// After Close, writes fail with os.ErrClosed and the file stays closed (a disk about to be
// unmounted is not opened again).
type Writer struct {
	Path     string
	MaxBytes int64
	Keep     int
	// Perm is the new file's mode (0 means 0600).
	Perm os.FileMode

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
}

// Write appends p, rotating first when the file would grow past MaxBytes (a file left by an
// earlier Writer counts). A single write larger than MaxBytes goes into a file of its own.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("logrotate %s: %w", w.Path, os.ErrClosed)
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			return 0, err
		}
	}
	if w.size > 0 && w.size+int64(len(p)) > w.MaxBytes {
		w.f.Close()
		w.f = nil
		if err := Rotate(w.Path, w.Keep); err != nil {
			return 0, err
		}
		if err := w.open(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *Writer) open() error {
	perm := w.Perm
	if perm == 0 {
		perm = 0o600
	}
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, perm)
	if err != nil {
		return fmt.Errorf("logrotate: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logrotate: %w", err)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Close closes the file for good.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
