package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/guestagent/api/mux"
)

func TestCheckToken(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, in string
		ok       bool
		rest     string // what must be left unread
	}{
		{"right", tok + "\nMUX", true, "MUX"},
		{"wrong", strings.Repeat("f", 32) + "\n", false, ""},
		{"prefix", tok[:31] + "\n", false, ""},
		{"longer", tok + "0\n", false, ""},
		{"no newline before eof", tok, false, ""},
		{"empty line", "\n" + tok + "\n", false, tok + "\n"},
		{"endless line", strings.Repeat("a", 1000), false, strings.Repeat("a", 1000-34)},
	}
	for _, tt := range tests {
		r := strings.NewReader(tt.in)
		err := checkToken(r, tok)
		if (err == nil) != tt.ok {
			t.Errorf("%s: checkToken = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if rest, _ := io.ReadAll(r); string(rest) != tt.rest {
			t.Errorf("%s: left %q unread, want %q", tt.name, rest, tt.rest)
		}
	}
}

// TestSerialTokenGate: a peer with the wrong token is hung up on and the next session, from
// a peer with the right token, is served.
func TestSerialTokenGate(t *testing.T) {
	const tok = "5f0c8a0d2b6e4f1a9c3d7e8b1a2c3d4e"
	hosts := make(chan net.Conn, 4)
	open := func() (io.ReadWriteCloser, error) {
		h, g := socketPair(t)
		hosts <- h
		return g, nil
	}
	ch := serialChannel(open, []uint32{api.ServiceControl}, tok, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ch.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		for {
			c, err := ch.Listener(api.ServiceControl).Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello host"))
			c.Close()
		}
	}()

	intruder := <-hosts
	defer intruder.Close()
	intruder.Write([]byte(mux.Preamble + "00000000000000000000000000000000\n"))
	intruder.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := intruder.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("wrong token: read %d bytes, %v; want the guest to hang up (EOF)", n, err)
	}

	var h net.Conn
	select {
	case h = <-hosts:
	case <-time.After(10 * time.Second):
		t.Fatal("the guest did not reopen the channel after a failed token")
	}
	defer h.Close()
	h.Write([]byte("tail of an old session" + mux.Preamble + tok + "\n"))
	cl, err := mux.NewClient(h)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	c, err := cl.DialGuest(dctx, api.ServiceControl)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	if !bytes.Equal(b, []byte("hello host")) {
		t.Fatalf("read %q through the authenticated session", b)
	}
}

func TestSkipToPreamble(t *testing.T) {
	for _, tt := range []struct {
		in      string
		skipped int
		ok      bool
	}{
		{mux.Preamble + "rest", 0, true},
		{"\x00\x00\x00\x0c" + mux.Preamble + "rest", 4, true},
		{mux.Preamble[:5] + mux.Preamble + "rest", 5, true},
		{"no preamble at all", 0, false},
	} {
		r := strings.NewReader(tt.in)
		n, err := skipToPreamble(r)
		if (err == nil) != tt.ok || n != tt.skipped {
			t.Errorf("skipToPreamble(%q) = %d, %v", tt.in, n, err)
			continue
		}
		if rest, _ := io.ReadAll(r); tt.ok && string(rest) != "rest" {
			t.Errorf("skipToPreamble(%q) consumed past the preamble: left %q", tt.in, rest)
		}
	}
}

// TestBootTokenFromFwCfg: the guest reads the token where the boot contract says, from
// QEMU's fw_cfg in sysfs (a fake tree here), and refuses to go on without it.
func TestBootTokenFromFwCfg(t *testing.T) {
	const tok = "00112233445566778899aabbccddeeff"
	root := t.TempDir()
	p, err := bootparams.Decode("console=ttyS0 machine.channel=serial machine.token=fw_cfg:opt/run.machine/token")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootToken(p, root); err == nil || !strings.Contains(err.Error(), "qemu_fw_cfg") {
		t.Fatalf("no fw_cfg entry: bootToken = %v, want an error naming qemu_fw_cfg", err)
	}
	raw := filepath.Join(root, "sys/firmware/qemu_fw_cfg/by_name/opt/run.machine/token/raw")
	if err := os.MkdirAll(filepath.Dir(raw), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(raw, []byte(tok), 0o400); err != nil {
		t.Fatal(err)
	}
	if got, err := bootToken(p, root); err != nil || got != tok {
		t.Fatalf("bootToken = %q, %v; want %q", got, err, tok)
	}
	none, _ := bootparams.Decode("machine.channel=serial")
	if got, err := bootToken(none, root); err != nil || got != "" {
		t.Fatalf("no token in the contract: bootToken = %q, %v; want none", got, err)
	}
}
