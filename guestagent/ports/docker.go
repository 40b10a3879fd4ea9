package ports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// listTimeout bounds one GET /containers/json; dockerd answers in milliseconds when healthy.
const listTimeout = 10 * time.Second

// sinceSlack widens the subscription backwards: dockerd sends the response headers before it
// registers the subscriber, so an event in that window would be missed without replay. A
// replayed event only costs one listing that finds nothing new.
const sinceSlack = time.Second

// actions are the container events that can change the published set.
var actions = []string{"start", "die", "stop", "kill", "destroy", "pause", "unpause", "restart"}

// Container is the part of one GET /containers/json entry this package reads.
type Container struct {
	ID    string          `json:"Id"`
	Ports []ContainerPort `json:"Ports"`
}

// ContainerPort is one entry of a container's Ports; PublicPort is 0 when not published.
// The numbers are ints so that out-of-range values can be rejected rather than wrapped.
type ContainerPort struct {
	IP          string `json:"IP"`
	PrivatePort int    `json:"PrivatePort"`
	PublicPort  int    `json:"PublicPort"`
	Type        string `json:"Type"`
}

// event is the part of a Docker event this package reads; Status is the pre-1.22 name of
// Action.
type event struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Status string `json:"status"`
}

func newClient(socket string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     time.Minute,
	}}
}

// eventsQuery filters the stream to the container events in actions, from since-sinceSlack.
func eventsQuery(since time.Time) string {
	f, _ := json.Marshal(map[string][]string{"type": {"container"}, "event": actions})
	s := since.Add(-sinceSlack)
	q := url.Values{
		"filters": {string(f)},
		"since":   {strconv.FormatInt(s.Unix(), 10) + "." + fmt.Sprintf("%09d", s.Nanosecond())},
	}
	return q.Encode()
}

// subscribe opens Docker's event stream; the caller closes the body.
func subscribe(ctx context.Context, c *http.Client, since time.Time) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?"+eventsQuery(since), nil)
	if err != nil {
		return nil, fmt.Errorf("docker events: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("docker events: %s: %s", resp.Status, snippet(resp.Body))
	}
	return resp.Body, nil
}

// readEvents calls changed for every relevant container event until the stream fails; a
// clean end of stream is io.ErrUnexpectedEOF, since dockerd never ends it on its own.
func readEvents(r io.Reader, changed func()) error {
	dec := json.NewDecoder(r)
	for {
		var e event
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if relevant(e) {
			changed()
		}
	}
}

func relevant(e event) bool {
	if e.Type != "" && e.Type != "container" {
		return false
	}
	a := e.Action
	if a == "" {
		a = e.Status
	}
	for _, x := range actions {
		if a == x {
			return true
		}
	}
	return false
}

// listContainers is GET /containers/json: running (and paused) containers with their ports.
func listContainers(ctx context.Context, c *http.Client) ([]Container, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/json", nil)
	if err != nil {
		return nil, fmt.Errorf("docker container list: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker container list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("docker container list: %s: %s", resp.Status, snippet(resp.Body))
	}
	var cs []Container
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		return nil, fmt.Errorf("docker container list: decode: %w", err)
	}
	return cs, nil
}

func snippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return string(b)
}
