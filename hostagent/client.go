package hostagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/machine-run/machine/portforward"
)

// Client talks to a running host agent over its control socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the control socket at path.
func NewClient(path string) *Client {
	return &Client{socket: path, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

func (c *Client) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("host agent (%s): %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("host agent %s: %s", path, resp.Status)
	}
	return resp, nil
}

// Status returns the agent's view of the machine.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.get(ctx, pathStatus)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s Status
	return &s, json.NewDecoder(resp.Body).Decode(&s)
}

// SetAutoPause changes the running machine's idle time before an auto-pause; 0 turns
// auto-pause off (and resumes a paused machine).
func (c *Client) SetAutoPause(ctx context.Context, after time.Duration) error {
	return c.post(ctx, pathAutoPause+"?after="+url.QueryEscape(after.String()), http.StatusNoContent, "auto-pause")
}

// post sends a body-less POST and wants status want; any other status is an error that
// names what was asked, with the agent's message.
func (c *Client) post(ctx context.Context, path string, want int, what string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("host agent (%s): %s: %w", c.socket, what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("host agent %s: %s: %s", what, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Stop asks the agent to stop the VM; it returns once the request is accepted.
func (c *Client) Stop(ctx context.Context, force bool) error {
	q := ""
	if force {
		q = "?force=1"
	}
	return c.post(ctx, pathStop+q, http.StatusAccepted, "stop")
}

// Events calls fn for every event, past ones first, until fn returns false, the agent
// exits (io.EOF) or ctx ends.
func (c *Client) Events(ctx context.Context, fn func(Event) bool) error {
	resp, err := c.get(ctx, pathEvents)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var e Event
		if err := dec.Decode(&e); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			return err
		}
		if !fn(e) {
			return nil
		}
	}
}

// DialGuest opens a raw stream to a guest service through the agent. The returned conn
// supports CloseWrite.
func (c *Client) DialGuest(ctx context.Context, service uint32) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, fmt.Errorf("host agent (%s): %w", c.socket, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fmt.Fprintf(conn, "GET %s%d HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", pathGuest, service, upgradeProto)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("host agent: guest service %d: %w", service, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, fmt.Errorf("host agent: guest service %d: %s: %s", service, resp.Status, strings.TrimSpace(string(msg)))
	}
	return &upgradedConn{Conn: conn, r: br}, nil
}

// upgradedConn reads what the HTTP reader already buffered before the raw stream.
type upgradedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *upgradedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *upgradedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write: not supported")
}

// Ports lists the forwarded ports.
func (c *Client) Ports(ctx context.Context) ([]portforward.Forward, error) {
	resp, err := c.get(ctx, pathPorts)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var fs []portforward.Forward
	return fs, json.NewDecoder(resp.Body).Decode(&fs)
}
