package mux

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"
)

// Guest-initiated streams (host services: DNS, host.docker.internal, file events) use the
// same framing in the other direction: the guest opens a yamux stream, writes the 4-byte
// service number and waits for the host's status byte.

// HostHandler returns the function that serves streams the guest opens to service, or nil
// when the host does not serve it (the guest is then told ErrNoService). The returned
// function owns the connection.
type HostHandler func(service uint32) func(net.Conn)

// DialHost opens a stream to service on the host. It fails with ErrNoService when the host
// does not serve it.
func (s *Server) DialHost(ctx context.Context, service uint32) (net.Conn, error) {
	return openService(ctx, s.sess, service)
}

// ServeHost accepts the streams the guest opens until the session ends, routing each by its
// service header to h.
func (c *Client) ServeHost(h HostHandler) {
	for {
		st, err := c.sess.AcceptStream()
		if err != nil {
			return
		}
		go routeHost(&Conn{Stream: st}, h)
	}
}

func routeHost(c *Conn, h HostHandler) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	serve := h(binary.BigEndian.Uint32(hdr[:]))
	if serve == nil {
		c.Write([]byte{statusNoService})
		c.Close()
		return
	}
	if _, err := c.Write([]byte{statusOK}); err != nil {
		c.Close()
		return
	}
	serve(c)
}

// openService opens a stream on sess to service and waits for the peer's status byte.
func openService(ctx context.Context, sess *yamux.Session, service uint32) (net.Conn, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("host channel: open stream for service %d: %w", service, err)
	}
	conn := &Conn{Stream: st}
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], service)
	fail := func(err error) (net.Conn, error) {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("host channel: dial service %d: %w", service, err)
	}
	if _, err := st.Write(hdr[:]); err != nil {
		return fail(err)
	}
	var status [1]byte
	if _, err := io.ReadFull(st, status[:]); err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(ctx.Err())
	}
	if status[0] != statusOK {
		conn.Close()
		return nil, fmt.Errorf("host channel: service %d: %w", service, ErrNoService)
	}
	return conn, nil
}
