package forward

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"

	"github.com/machine-run/machine/guestagent/api"
)

// relayUDP sends each datagram framed on stream to target from one connected UDP socket, and
// frames every reply back, until the host closes the stream or ctx ends. The host keeps one
// stream per client address, so the target sees one stable source port per client.
func relayUDP(ctx context.Context, stream net.Conn, target string) {
	uc, err := net.DialTimeout("udp", target, dialTimeout)
	if err != nil {
		slog.Debug("forward: dial", "target", target, "err", err)
		stream.Close()
		return
	}
	stop := context.AfterFunc(ctx, func() { stream.Close() })
	defer stop()

	replies := make(chan struct{})
	go func() {
		defer close(replies)
		defer stream.Close() // a dead socket ends the flow; the host then reopens one
		buf := make([]byte, api.MaxDatagram)
		for {
			n, err := uc.Read(buf)
			if err != nil {
				if refused(err) {
					continue
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
		if _, err := uc.Write(buf[:n]); err != nil && !refused(err) {
			break
		}
	}
	uc.Close()
	stream.Close()
	<-replies
}

// refused reports the ICMP port-unreachable a connected UDP socket reports on a later call;
// UDP has no connection, so the relay keeps going (the service may come up).
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
