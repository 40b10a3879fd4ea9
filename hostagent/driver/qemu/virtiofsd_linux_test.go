package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeDaemon writes a shell script standing in for virtiofsd.
func fakeDaemon(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "virtiofsd")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartVirtiofsdWaitsForItsSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "fs0.sock")
	os.WriteFile(sock, nil, 0o600) // a stale socket from an earlier run must not count as ready
	// The socket appears half a second after start: the path comes from --socket-path.
	bin := fakeDaemon(t, `for a; do case $a in --socket-path=*) s=${a#--socket-path=};; esac; done
sleep 0.5; : > "$s"; exec sleep 30`)
	began := time.Now()
	fd, err := startOneVirtiofsd(context.Background(), bin, sock, dir, false, filepath.Join(dir, "v.log"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 400*time.Millisecond {
		t.Errorf("ready after %s, before the daemon made its socket", d)
	}
	fd.stop()
	select {
	case <-fd.exited:
	default:
		t.Error("stop returned with the daemon running")
	}
}

func TestStartVirtiofsdReportsWhatItSaid(t *testing.T) {
	dir := t.TempDir()
	bin := fakeDaemon(t, `echo "error: unknown option --allow-mmap" >&2; exit 2`)
	_, err := startOneVirtiofsd(context.Background(), bin, filepath.Join(dir, "fs0.sock"), dir, false, filepath.Join(dir, "v.log"))
	if err == nil || !strings.Contains(err.Error(), "unknown option --allow-mmap") || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("err = %v, want virtiofsd's own words and its status", err)
	}
}
