//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/machine-run/machine/hostagent/guestexec"
)

// watchResize sends the terminal's size on every SIGWINCH until stop is called.
func watchResize(f *os.File, out chan<- guestexec.Size) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				if w, h, err := term.GetSize(int(f.Fd())); err == nil {
					select {
					case out <- guestexec.Size{Rows: uint16(h), Cols: uint16(w)}:
					default:
					}
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}
