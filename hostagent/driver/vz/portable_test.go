package vz

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckKernel(t *testing.T) {
	image := make([]byte, 128)
	copy(image[56:], "ARM\x64")
	zboot := make([]byte, 128)
	copy(zboot, "MZ\x00\x00zimg")
	for _, tc := range []struct {
		name    string
		arch    string
		data    []byte
		wantErr error
		found   string
	}{
		{"arm64 Image", "arm64", image, nil, ""},
		{"arm64 gzip", "arm64", append([]byte{0x1f, 0x8b, 8, 0}, make([]byte, 100)...), ErrCompressedKernel, "gzip"},
		{"arm64 zboot", "arm64", zboot, ErrCompressedKernel, "EFI zboot"},
		{"arm64 zstd", "arm64", append([]byte("\x28\xb5\x2f\xfd"), make([]byte, 100)...), ErrCompressedKernel, "zstd"},
		{"arm64 short file", "arm64", []byte("ARM"), ErrCompressedKernel, "no arm64 Image header"},
		{"amd64 bzImage is not inspected", "amd64", []byte{0x1f, 0x8b}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kernel")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			err := checkKernel(path, tc.arch)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("checkKernel = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.found) {
				t.Errorf("error %q does not say it found %q", err, tc.found)
			}
		})
	}
	if err := checkKernel(filepath.Join(t.TempDir(), "missing"), "arm64"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing kernel: %v, want ErrNotExist", err)
	}
}

func TestMACForName(t *testing.T) {
	a, b := macForName("default"), macForName("default")
	if !bytes.Equal(a, b) {
		t.Fatalf("MAC not stable: %v then %v", a, b)
	}
	if bytes.Equal(a, macForName("other")) {
		t.Fatalf("two machines share MAC %v", a)
	}
	for _, name := range []string{"default", "other", "x", ""} {
		m := macForName(name)
		if len(m) != 6 || m[0]&0x01 != 0 || m[0]&0x02 == 0 {
			t.Errorf("%q: %v is not a locally administered unicast MAC", name, m)
		}
	}
}

func testDialer(connect func() (net.Conn, error), stopped chan struct{}) *dialer {
	return &dialer{connect: connect, stopped: stopped,
		minBackoff: time.Millisecond, maxBackoff: 4 * time.Millisecond, attemptTimeout: 200 * time.Millisecond}
}

func TestDialRetriesUntilGuestListens(t *testing.T) {
	var calls atomic.Int32
	c1, c2 := net.Pipe()
	defer c2.Close()
	d := testDialer(func() (net.Conn, error) {
		if calls.Add(1) < 5 {
			return nil, errors.New("connection reset by peer")
		}
		return c1, nil
	}, make(chan struct{}))
	conn, err := d.dial(context.Background(), 2400)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if conn != c1 || calls.Load() != 5 {
		t.Fatalf("got %v after %d calls, want the 5th attempt's conn", conn, calls.Load())
	}
}

func TestDialGivesUpWhenContextEnds(t *testing.T) {
	d := testDialer(func() (net.Conn, error) { return nil, errors.New("connection reset by peer") }, make(chan struct{}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := d.dial(ctx, 2400)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection reset by peer") {
		t.Fatalf("dial = %v, want deadline exceeded naming the last error", err)
	}
}

func TestDialStopsWhenVMStops(t *testing.T) {
	stopped := make(chan struct{})
	d := testDialer(func() (net.Conn, error) { return nil, errors.New("refused") }, stopped)
	time.AfterFunc(20*time.Millisecond, func() { close(stopped) })
	_, err := d.dial(context.Background(), 2400)
	if !errors.Is(err, ErrVMStopped) {
		t.Fatalf("dial = %v, want ErrVMStopped", err)
	}
}

// closeRecorder is a conn that records Close, to check a late connection is not leaked.
type closeRecorder struct {
	net.Conn
	closed chan struct{}
}

func (c *closeRecorder) Close() error { close(c.closed); return nil }

func TestDialAbandonsHungAttemptAndClosesLateConn(t *testing.T) {
	release := make(chan struct{})
	late := &closeRecorder{closed: make(chan struct{})}
	d := testDialer(func() (net.Conn, error) {
		<-release // vz's Connect blocked until the guest answers
		return late, nil
	}, make(chan struct{}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := d.dial(ctx, 2401); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("dial returned after %v; a blocked connect must not hold it", el)
	}
	close(release)
	select {
	case <-late.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("connection that arrived after the caller gave up was not closed")
	}
}
