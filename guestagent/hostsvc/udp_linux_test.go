package hostsvc

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// TestUDPProxyRelaysEachFlowThroughOneHostStream: datagrams from one source share one host
// stream opened for the port conntrack names, replies go back to that source, and two
// sources get two streams.
func TestUDPProxyRelaysEachFlowThroughOneHostStream(t *testing.T) {
	streams := make(chan api.HostConnectRequest, 4)
	dial := func(ctx context.Context, service uint32) (net.Conn, error) {
		if service != api.ServiceHostConnect {
			t.Errorf("dialled service %d", service)
		}
		g, h := net.Pipe()
		go func() { // the host: answer OK, then echo each datagram with its port
			defer h.Close()
			req, err := api.ReadHostConnect(h)
			if err != nil {
				return
			}
			streams <- req
			h.Write([]byte{api.HostConnectOK})
			buf := make([]byte, api.MaxDatagram)
			for {
				n, err := api.ReadDatagram(h, buf)
				if err != nil {
					return
				}
				api.WriteDatagram(h, []byte(strings.ToUpper(string(buf[:n]))))
			}
		}()
		return g, nil
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Dial: dial, Log: slog.New(slog.DiscardHandler)}
	u := svc.newUDPProxy(pc)
	u.origPort = func(src netip.AddrPort) (uint16, error) { return 9999, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.serve(ctx)

	exchange := func(c net.Conn, msg string) string {
		t.Helper()
		buf := make([]byte, 100)
		for try := 0; try < 3; try++ {
			c.Write([]byte(msg))
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := c.Read(buf); err == nil {
				return string(buf[:n])
			}
		}
		t.Fatalf("no reply to %q", msg)
		return ""
	}
	a, _ := net.Dial("udp4", pc.LocalAddr().String())
	b, _ := net.Dial("udp4", pc.LocalAddr().String())
	defer a.Close()
	defer b.Close()
	if got := exchange(a, "one"); got != "ONE" {
		t.Fatalf("a: %q", got)
	}
	if got := exchange(a, "two"); got != "TWO" {
		t.Fatalf("a again: %q", got)
	}
	if got := exchange(b, "three"); got != "THREE" {
		t.Fatalf("b: %q", got)
	}
	var reqs []api.HostConnectRequest
	for len(streams) > 0 {
		reqs = append(reqs, <-streams)
	}
	if len(reqs) != 2 || reqs[0] != (api.HostConnectRequest{Proto: "udp", Port: 9999}) {
		t.Fatalf("host streams %v, want two udp/9999 (one per source)", reqs)
	}
}
