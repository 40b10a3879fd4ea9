package main

import (
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/machine-run/machine/vmimage/oci"
)

// newPullProgress shows blob downloads on w: a bar per blob (bytes, rate, ETA) when w is a
// terminal, one line per blob otherwise (logs, pipes, CI).
func newPullProgress(w io.Writer) oci.Progress {
	f, ok := w.(*os.File)
	return pullProgress{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

type pullProgress struct {
	w   io.Writer
	tty bool
}

func (p pullProgress) Blob(role string, d v1.Descriptor) oci.BlobProgress {
	label := fmt.Sprintf("%-9s %s", role, shortDigest(d.Digest.String()))
	if p.tty {
		return &barBlob{w: p.w, label: label, size: d.Size}
	}
	return &lineBlob{w: p.w, label: label, size: d.Size}
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

type barBlob struct {
	w     io.Writer
	label string
	size  int64
	bar   *progressbar.ProgressBar
}

func (b *barBlob) Start(have int64) {
	if b.bar == nil {
		b.bar = progressbar.NewOptions64(b.size,
			progressbar.OptionSetWriter(b.w), progressbar.OptionSetDescription(b.label),
			progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(b.w) }))
	}
	b.bar.Set64(have)
}

func (b *barBlob) Write(p []byte) (int, error) { return b.bar.Write(p) }

func (b *barBlob) Done(err error) {
	if b.bar != nil && err != nil {
		b.bar.Exit()
		fmt.Fprintln(b.w)
	}
}

// lineBlob prints when a blob starts, resumes and ends, with its rate.
type lineBlob struct {
	w      io.Writer
	label  string
	size   int64
	began  time.Time
	got    int64
	starts int
}

func (l *lineBlob) Start(have int64) {
	l.starts++
	if l.starts == 1 {
		l.began = time.Now()
	}
	switch {
	case have > 0:
		fmt.Fprintf(l.w, "%s resuming at %s of %s\n", l.label, mb(have), mb(l.size))
	case l.starts == 1:
		fmt.Fprintf(l.w, "%s downloading %s\n", l.label, mb(l.size))
	}
}

func (l *lineBlob) Write(p []byte) (int, error) { l.got += int64(len(p)); return len(p), nil }

func (l *lineBlob) Done(err error) {
	if err != nil {
		fmt.Fprintf(l.w, "%s failed after %s: %v\n", l.label, mb(l.got), err)
		return
	}
	d := time.Since(l.began)
	fmt.Fprintf(l.w, "%s done: %s in %s (%s/s)\n", l.label, mb(l.got), d.Round(10*time.Millisecond), mb(int64(float64(l.got)/max(d.Seconds(), 1e-3))))
}

func mb(n int64) string {
	if n < 1e6 {
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
