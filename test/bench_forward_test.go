//go:build e2e

package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/portforward"
)

// benchForwarding measures forwarding to one echo server in machine name's guest (image must
// hold /bin/echoserver): machine's forwarder (a wildcard publish, which it carries through the
// forwarding NIC, see hostagent/netpath.go), the raw guest channel (what it carried them over
// before, and still carries loopback publishes and UDP over) and QEMU's hostfwd (the machine
// was created with --qemu-hostfwd tcp:127.0.0.1:19000-:9000), with ratios.
func benchForwarding(b *testing.B, name, ctxName, image string) {
	docker(b, ctxName, "", "run", "-d", "--name", "echo", "-p", "9000:9000", image, "/bin/echoserver", "-tcp", ":9000")
	defer docker(b, ctxName, "", "rm", "-f", "echo")
	agent := hostagent.NewClient(filepath.Join(env.home, name, "hostagent.sock"))
	fwd := portforward.GuestDialer(agent.DialGuest)
	paths := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"machine forwarder (127.0.0.1:9000, NIC)", func() (net.Conn, error) { return net.Dial("tcp", "127.0.0.1:9000") }},
		{"raw guest channel", func() (net.Conn, error) {
			return fwd(context.Background(), api.ForwardRequest{Proto: "tcp", Port: 9000})
		}},
		{"QEMU hostfwd (127.0.0.1:19000)", func() (net.Conn, error) { return net.Dial("tcp", "127.0.0.1:19000") }},
	}
	waitTCP(b, "127.0.0.1:9000")
	type res struct{ mbps, p50, p99, open50 float64 }
	var results []res
	for _, p := range paths {
		mbps := throughput(b, p.dial, 32<<20)
		p50, p99 := latency(b, p.dial, 500)
		open50 := connectLatency(b, p.dial, 200)
		results = append(results, res{mbps, p50, p99, open50})
		fmt.Printf("%-44s %7.1f MB/s  rtt p50 %6.2f ms  p99 %6.2f ms  connect+echo p50 %6.2f ms\n", p.name, mbps, p50, p99, open50)
	}
	ours, raw, qemu := results[0], results[1], results[2]
	fmt.Printf("ratios forwarder/hostfwd: throughput %.2f, p50 %.2f (target <= 1.50); forwarder/raw channel: throughput %.2f (target >= 0.95), p50 %.2f (target <= 1.10); connect+echo forwarder/hostfwd %.2f\n",
		ours.mbps/qemu.mbps, ours.p50/qemu.p50, ours.mbps/raw.mbps, ours.p50/raw.p50, ours.open50/qemu.open50)
	b.ReportMetric(ours.mbps, "fwd_MB/s")
	b.ReportMetric(qemu.mbps, "hostfwd_MB/s")
	b.ReportMetric(ours.p50, "fwd_p50_ms")
	b.ReportMetric(qemu.p50, "hostfwd_p50_ms")
	b.ReportMetric(ours.open50, "fwd_connect_p50_ms")
}

// waitTCP returns once addr echoes a byte. A connect alone is not enough: the host listener
// accepts as soon as the port is published, before the server in the container listens, and
// a connection made then ends at once (a measurement on it read EOF).
func waitTCP(b *testing.B, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			one := []byte{'x'}
			_, werr := c.Write(one)
			_, rerr := io.ReadFull(c, one)
			c.Close()
			if werr == nil && rerr == nil {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%s never echoed", addr)
}

// throughput sends n bytes through an echo connection and returns MB/s of payload.
func throughput(b *testing.B, dial func() (net.Conn, error), n int64) float64 {
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	began := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, c, n)
		errc <- err
	}()
	buf := make([]byte, 64<<10)
	for sent := int64(0); sent < n; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return float64(n) / 1e6 / time.Since(began).Seconds()
}

// latency measures round trips of 64 bytes on one connection; it returns p50 and p99 in ms.
func latency(b *testing.B, dial func() (net.Conn, error), rounds int) (float64, float64) {
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	var ds []time.Duration
	for i := 0; i < rounds; i++ {
		began := time.Now()
		c.Write(msg)
		if _, err := io.ReadFull(c, msg); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(began))
	}
	return ms(percentile(ds, 50)), ms(percentile(ds, 99))
}

// connectLatency opens n connections one after another, each with one 1-byte echo, and
// returns the p50 in ms: what a stream open into the guest costs.
func connectLatency(b *testing.B, dial func() (net.Conn, error), n int) float64 {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		began := time.Now()
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte{'x'})
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
		ds = append(ds, time.Since(began))
	}
	return ms(percentile(ds, 50))
}
