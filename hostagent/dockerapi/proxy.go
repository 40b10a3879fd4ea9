// Package dockerapi is the host end of a machine's Docker API socket. It follows the
// HTTP/1.1 exchanges on each client connection (keep-alive, Content-Length and chunked
// bodies, byte for byte as sent) and inspects only two of them: a container create, whose
// bind mounts must name folders the machine shares (Binds), and a container start, whose
// answer waits, bounded, until the host has bound the container's published ports
// (Proxy.WaitPorts). A protocol switch (101: attach, exec, BuildKit's /session and /grpc) or
// a response delimited by the connection's end turns the connection into a raw
// bidirectional copy with half-close passed on.
package dockerapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/inetaf/tcpproxy"

	"github.com/machine-run/machine/internal/acceptloop"
	"github.com/machine-run/machine/internal/streamproxy"
)

// maxCreateBody bounds the create request bodies read whole for inspection.
const maxCreateBody = 8 << 20

// inspectTimeout bounds the inspect that learns which ports a started container publishes.
const inspectTimeout = 500 * time.Millisecond

// DefaultPortWait bounds how long a start answer waits for the host's port listeners.
const DefaultPortWait = 2 * time.Second

// PublishedPort is one host binding of a started container, as the engine reports it.
type PublishedPort struct {
	Proto  string // tcp or udp
	HostIP string // the address the engine publishes on inside the machine (0.0.0.0, ::)
	Port   uint16
}

// Proxy forwards Docker API connections to the engine. Dial is required; the rest is
// optional.
type Proxy struct {
	// Dial opens a fresh connection to the engine's API.
	Dial func(ctx context.Context) (net.Conn, error)
	// Binds checks create requests; nil passes them through.
	Binds *Binds
	// WaitPorts, if set, is called after the engine has started container id (its full ID),
	// with the ports it publishes; it returns when the host serves them all or has given
	// up on one, or when ctx ends.
	WaitPorts func(ctx context.Context, id string, ports []PublishedPort) error
	// PortWait bounds WaitPorts (DefaultPortWait when zero).
	PortWait time.Duration
	Logger   *slog.Logger
}

func (p *Proxy) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// Serve proxies every connection accepted on ln until ctx ends, which closes ln and every
// connection; it returns when all of them are done.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	return acceptloop.Run(ctx, ln, p.log(), func(c net.Conn) { p.ServeConn(ctx, c) })
}

var (
	createPath = regexp.MustCompile(`^(/v[0-9.]+)?/containers/create$`)
	startPath  = regexp.MustCompile(`^(/v[0-9.]+)?/containers/([^/]+)/start$`)
)

// ServeConn proxies one client connection and closes it.
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn) {
	defer client.Close()
	up, err := p.Dial(ctx)
	if err != nil {
		p.log().Warn("docker API: dial engine", "err", err)
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { client.Close(); up.Close() })
	defer stop()
	c := &conn{p: p, client: client, up: up, cr: bufio.NewReader(client), ur: bufio.NewReader(up)}
	raw, err := c.exchanges(ctx)
	if err != nil {
		if !errors.Is(err, io.EOF) && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
			p.log().Debug("docker API connection", "err", err)
		}
		return
	}
	if raw {
		// Hand what is buffered on either side to the raw copy first.
		src := &tcpproxy.Conn{Peeked: buffered(c.cr), Conn: client}
		dst := &tcpproxy.Conn{Peeked: buffered(c.ur), Conn: up}
		streamproxy.Proxy(ctx, src, func(context.Context) (net.Conn, error) { return dst, nil }, nil)
	}
}

func buffered(r *bufio.Reader) []byte {
	b, _ := r.Peek(r.Buffered())
	return append([]byte(nil), b...)
}

type conn struct {
	p          *Proxy
	client, up net.Conn
	cr, ur     *bufio.Reader
}

// exchanges follows request/response pairs until the connection ends (an error, io.EOF when
// the client is done) or must become a raw copy (true).
func (c *conn) exchanges(ctx context.Context) (bool, error) {
	for {
		req, err := readHead(c.cr)
		if err != nil {
			return false, err
		}
		if req.method == "" {
			return false, errors.New("client sent a response, not a request")
		}
		kind, n, err := requestBody(req)
		if err != nil {
			c.reply(http.StatusBadRequest, err.Error())
			return false, err
		}
		target, _, _ := strings.Cut(req.target, "?")
		var startID string
		bodyDone := make(chan error, 1)
		switch {
		case req.method == "POST" && createPath.MatchString(target) && c.p.Binds != nil:
			refused, err := c.sendCreate(req, kind, n)
			if err != nil {
				return false, err
			}
			bodyDone <- nil
			if refused {
				if req.hasToken("Connection", "close") {
					return false, io.EOF
				}
				continue
			}
		default:
			if m := startPath.FindStringSubmatch(target); m != nil && req.method == "POST" {
				startID = m[2]
			}
			if _, err := c.up.Write(req.raw); err != nil {
				return false, err
			}
			// The body streams while the answer is read: the engine may answer early.
			go func() { bodyDone <- copyBody(c.up, c.cr, kind, n) }()
		}
		raw, err := c.response(ctx, req, startID)
		if err != nil {
			return false, err
		}
		if err := <-bodyDone; err != nil {
			return false, err
		}
		if raw {
			return true, nil
		}
	}
}

// sendCreate reads a create request whole, and either refuses it (true) or sends it on,
// translated if its bind sources needed it.
func (c *conn) sendCreate(req *head, kind bodyKind, n int64) (bool, error) {
	framed, data, err := readBody(c.cr, kind, n, maxCreateBody)
	if err != nil {
		c.reply(http.StatusBadRequest, "container create: "+err.Error())
		return false, err
	}
	newBody, err := c.p.Binds.CheckCreate(data)
	var refused *RefusedError
	if errors.As(err, &refused) {
		c.p.log().Info("docker API: refused a container create", "reason", refused.Error())
		return true, c.reply(http.StatusBadRequest, refused.Error())
	}
	if err != nil {
		return false, err
	}
	msg := append(append([]byte(nil), req.raw...), framed...)
	if newBody != nil {
		msg = append(withLength(req, len(newBody)), newBody...)
	}
	_, err = c.up.Write(msg)
	return false, err
}

// reply answers the client from here, as the engine answers errors.
func (c *conn) reply(code int, msg string) error {
	body, _ := json.Marshal(map[string]string{"message": msg})
	body = append(body, '\n')
	_, err := fmt.Fprintf(c.client, "HTTP/1.1 %d %s\r\nApi-Version: \r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	return err
}

// response passes on the engine's answer to req (interim 1xx answers first). It reports
// whether the connection becomes a raw copy.
func (c *conn) response(ctx context.Context, req *head, startID string) (bool, error) {
	for {
		resp, err := readHead(c.ur)
		if err != nil {
			return false, err
		}
		if resp.status == 0 {
			return false, errors.New("engine sent a request, not a response")
		}
		if resp.status == http.StatusSwitchingProtocols {
			_, err := c.client.Write(resp.raw)
			return true, err
		}
		if resp.status/100 == 1 {
			if _, err := c.client.Write(resp.raw); err != nil {
				return false, err
			}
			continue
		}
		kind, n, err := responseBody(resp, req.method)
		if err != nil {
			return false, err
		}
		if startID != "" && resp.status/100 == 2 {
			c.waitPorts(ctx, startID)
		}
		if _, err := c.client.Write(resp.raw); err != nil {
			return false, err
		}
		if kind == bodyToClose {
			return true, nil
		}
		if err := copyBody(c.client, c.ur, kind, n); err != nil {
			return false, err
		}
		if !keepsAlive(req, resp) {
			return false, io.EOF
		}
		return false, nil
	}
}

// waitPorts holds a start's answer until the host serves the container's published ports,
// at most PortWait. It never fails the start: the container has started either way.
func (c *conn) waitPorts(ctx context.Context, id string) {
	if c.p.WaitPorts == nil {
		return
	}
	began := time.Now()
	wait := c.p.PortWait
	if wait <= 0 {
		wait = DefaultPortWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The engine can be slow to answer an inspect of a container it is removing (run
	// --rm of a quick command): that must not hold the start's answer for the whole wait.
	ictx, icancel := context.WithTimeout(ctx, inspectTimeout)
	fullID, ports, err := c.p.inspect(ictx, id)
	icancel()
	if err == nil && len(ports) > 0 {
		err = c.p.WaitPorts(ctx, fullID, ports)
	}
	if err == nil && len(ports) == 0 {
		return
	}
	c.p.log().Info("docker API: start waited for published ports", "container", id, "ports", len(ports), "wait", time.Since(began).String(), "err", errString(err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// inspect asks the engine, on a connection of its own, for a container's full ID and the
// host bindings of its published ports.
func (p *Proxy) inspect(ctx context.Context, id string) (string, []PublishedPort, error) {
	hc := &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return p.Dial(ctx) },
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://docker/containers/"+id+"/json", nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("inspect container %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("inspect container %s: engine answered %s", id, resp.Status)
	}
	var c struct {
		ID              string `json:"Id"`
		NetworkSettings struct {
			Ports map[string][]portBinding `json:"Ports"`
		} `json:"NetworkSettings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return "", nil, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return c.ID, publishedPorts(c.NetworkSettings.Ports), nil
}

// portBinding is one entry of an inspected container's NetworkSettings.Ports.
type portBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// publishedPorts flattens NetworkSettings.Ports ("80/tcp" -> bindings).
func publishedPorts(m map[string][]portBinding) []PublishedPort {
	var out []PublishedPort
	for key, bindings := range m {
		_, proto, _ := strings.Cut(key, "/")
		if proto == "" {
			proto = "tcp"
		}
		for _, b := range bindings {
			var port uint16
			if _, err := fmt.Sscan(b.HostPort, &port); err != nil || port == 0 {
				continue
			}
			out = append(out, PublishedPort{Proto: proto, HostIP: b.HostIP, Port: port})
		}
	}
	return out
}
