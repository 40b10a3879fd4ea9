package portforward

import (
	"context"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// benchPaths returns, for a backend listener, the address to dial for each path: straight to
// the backend, and through a Forwarder with the guest reached over loopback TCP (one
// connection per stream, like vsock) or over the yamux channel (the serial transport).
func benchPaths(b *testing.B, backend net.Listener) map[string]string {
	paths := map[string]string{"direct": backend.Addr().String()}
	for name, newGuest := range map[string]func(testing.TB) *guest{"forward-tcp": newTCPGuest, "forward-mux": newMuxGuest} {
		g := newGuest(b)
		p := freePort(b, ProtoTCP)
		g.route(p, backend.Addr())
		f := newForwarder(b, g)
		if err := f.Sync(context.Background(), []api.Port{tcpPort(p)}); err != nil {
			b.Fatal(err)
		}
		paths[name] = "127.0.0.1:" + itoa(p)
	}
	return paths
}

var pathOrder = []string{"direct", "forward-tcp", "forward-mux"}

// BenchmarkTCPThroughput streams 64 KiB writes one way and waits for the sink to count them.
func BenchmarkTCPThroughput(b *testing.B) {
	backend := serveTCPBackend(b, tail)
	paths := benchPaths(b, backend)
	chunk := make([]byte, 64<<10)
	for _, name := range pathOrder {
		b.Run(name, func(b *testing.B) {
			c, err := net.Dial("tcp4", paths[name])
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			if _, err := io.ReadAll(c); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkLatency measures 64-byte echo round trips on one open connection ("rtt") and
// connect-plus-first-round-trip on a fresh connection ("connect"), reporting percentiles.
func BenchmarkLatency(b *testing.B) {
	backend := serveTCPBackend(b, echo)
	paths := benchPaths(b, backend)
	msg := string(make([]byte, 64))
	for _, kind := range []string{"rtt", "connect"} {
		for _, name := range pathOrder {
			b.Run(kind+"/"+name, func(b *testing.B) {
				var c net.Conn
				if kind == "rtt" {
					var err error
					if c, err = net.Dial("tcp4", paths[name]); err != nil {
						b.Fatal(err)
					}
					defer c.Close()
				}
				samples := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					if kind == "connect" {
						var err error
						if c, err = net.Dial("tcp4", paths[name]); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := roundTrip(c, msg); err != nil {
						b.Fatal(err)
					}
					samples = append(samples, time.Since(start))
					if kind == "connect" {
						c.Close()
					}
				}
				b.StopTimer()
				reportPercentiles(b, samples)
			})
		}
	}
}

func reportPercentiles(b *testing.B, samples []time.Duration) {
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
