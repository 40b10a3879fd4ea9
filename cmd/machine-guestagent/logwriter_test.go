package main

import (
	"bytes"
	"testing"
)

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func TestLogWriterReplaysEarlyLines(t *testing.T) {
	var console, file bytes.Buffer
	w := &logWriter{console: &console}
	w.Write([]byte("one\n"))
	w.SetFile(nopCloser{&file})
	w.Write([]byte("two\n"))
	w.CloseFile()
	w.Write([]byte("three\n"))
	if console.String() != "one\ntwo\nthree\n" || file.String() != "one\ntwo\n" {
		t.Fatalf("console %q file %q", console.String(), file.String())
	}
}
