package hostsvc

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/internal/streamproxy"
)

// dialTimeout bounds a dial of the host's loopback; refusals come back at once.
const dialTimeout = 10 * time.Second

// loopbackAddr is the only place host connections go: never another host interface.
func loopbackAddr(port uint16) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
}

func (s *Server) serveConnect(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := api.ReadHostConnect(c)
	if err != nil {
		s.Log.Debug("host connect: bad request", "err", err)
		return
	}
	c.SetReadDeadline(time.Time{})
	if !s.HostAccess {
		c.Write([]byte{api.HostConnectDisabled})
		return
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	dst, err := s.Dial(dctx, req.Proto, loopbackAddr(req.Port))
	cancel()
	if err != nil {
		s.Log.Info("host.docker.internal: dial", "proto", req.Proto, "port", req.Port, "err", err)
		c.Write([]byte{api.HostConnectRefused})
		return
	}
	if _, err := c.Write([]byte{api.HostConnectOK}); err != nil {
		dst.Close()
		return
	}
	switch req.Proto {
	case "tcp":
		streamproxy.Proxy(ctx, c, func(context.Context) (net.Conn, error) { return dst, nil }, nil)
	case "udp":
		relayUDP(ctx, c, dst)
	}
}

// relayUDP sends each datagram framed on stream through dst (a connected UDP socket) and
// frames every reply back, until the guest closes the stream, dst fails or the flow idles.
func relayUDP(ctx context.Context, stream, dst net.Conn) {
	defer dst.Close()
	stop := context.AfterFunc(ctx, func() { stream.Close(); dst.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer stream.Close()
		buf := make([]byte, api.MaxDatagram)
		for {
			dst.SetReadDeadline(time.Now().Add(api.HostUDPIdle))
			n, err := dst.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue // an ICMP unreachable for an earlier datagram
				}
				return
			}
			if api.WriteDatagram(stream, buf[:n]) != nil {
				return
			}
		}
	}()
	buf := make([]byte, api.MaxDatagram)
	for {
		n, err := api.ReadDatagram(stream, buf)
		if err != nil {
			break
		}
		if _, err := dst.Write(buf[:n]); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
	}
	dst.Close()
	<-done
}
