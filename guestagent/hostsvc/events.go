package hostsvc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// FileEvents tells the host which shared folders containers bind-mount, and replays each
// host change it reports on the guest's share mount, so the guest kernel emits inotify
// events to the containers watching them (a 9p or virtiofs mount has no events of its own).
type FileEvents struct {
	Dial DialHost
	// Socket is the engine's API socket: bind mounts are read from running containers and
	// re-read on every container start, die and destroy.
	Socket string
	// Shares are the guest paths of the shared folders; only bind mounts under them count.
	Shares []string
	// Touch replays a change on one path; nil means TouchAttr.
	Touch func(path string) error
	Log   *slog.Logger

	mu      sync.Mutex
	paths   []string
	changed chan struct{}
}

// BindSources returns the sorted, distinct bind-mount sources of containers that lie under
// one of shares.
func BindSources(containers []Container, shares []string) []string {
	var out []string
	for _, c := range containers {
		for _, m := range c.Mounts {
			if m.Type != "bind" || !strings.HasPrefix(m.Source, "/") {
				continue
			}
			src := path.Clean(m.Source)
			if slices.ContainsFunc(shares, func(s string) bool { _, ok := under(src, s); return ok }) {
				out = append(out, src)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// under reports whether p is root or inside it.
func under(p, root string) (string, bool) {
	root = path.Clean(root)
	if p == root {
		return "", true
	}
	if root == "/" {
		return p[1:], true
	}
	rest, ok := strings.CutPrefix(p, root+"/")
	return rest, ok
}

// Container is the part of a GET /containers/json entry file events read.
type Container struct {
	Mounts []Mount `json:"Mounts"`
}

// Mount is one of a container's mounts.
type Mount struct {
	Type   string `json:"Type"`
	Source string `json:"Source"`
}

// Replay is what the guest does for one host change: the changed path itself is touched
// (when it still exists), and for a create, remove or rename its folder too, so a watcher
// of the folder hears that its listing changed.
func Replay(ev api.FileEvent, touch func(string) error) {
	if !strings.HasPrefix(ev.Path, "/") {
		return
	}
	p := path.Clean(ev.Path)
	touch(p)
	if ev.Op != api.FileWrite && p != "/" {
		touch(path.Dir(p))
	}
}

// TouchAttr sets a path's permission bits to what they are: a no-op on the file that still
// goes through the kernel's setattr, which emits IN_ATTRIB to every inotify watch on it and
// its folder. Unlike a utimes or truncate it cannot undo a concurrent host write. Symbolic
// links and missing paths are left alone.
func TouchAttr(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	return os.Chmod(p, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// Run keeps the host informed and replays its events until ctx ends.
func (f *FileEvents) Run(ctx context.Context) {
	if f.Log == nil {
		f.Log = slog.New(slog.DiscardHandler)
	}
	if f.Touch == nil {
		f.Touch = TouchAttr
	}
	f.mu.Lock()
	f.changed = make(chan struct{}, 1)
	f.mu.Unlock()
	go f.watchEngine(ctx)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := f.session(ctx)
		if ctx.Err() != nil {
			return
		}
		f.Log.Debug("file events: host session ended", "err", err)
		if time.Since(start) > 10*time.Second {
			delay = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (f *FileEvents) setPaths(p []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Equal(p, f.paths) {
		return
	}
	f.paths = p
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *FileEvents) current() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paths
}

// session sends the watch set (again on every change) and replays events until the stream
// ends.
func (f *FileEvents) session(ctx context.Context) error {
	c, err := f.Dial(ctx, api.ServiceHostWatch)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.replay(c) }()
	enc := json.NewEncoder(c)
	var sent []string
	first := true
	for {
		if p := f.current(); first || !slices.Equal(p, sent) {
			if err := enc.Encode(api.WatchRequest{Paths: p}); err != nil {
				return err
			}
			sent, first = p, false
			f.Log.Info("file events: watching", "paths", p)
		}
		select {
		case err := <-done:
			return err
		case <-f.changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *FileEvents) replay(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var b api.FileEvents
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
			continue
		}
		if b.Error != "" {
			f.Log.Warn("file events: the host says", "err", b.Error)
		}
		for _, ev := range b.Events {
			Replay(ev, f.Touch)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// watchEngine follows container events and recomputes the bind mounts after each.
func (f *FileEvents) watchEngine(ctx context.Context) {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", f.Socket)
	}}}
	for ctx.Err() == nil {
		err := f.follow(ctx, hc)
		if ctx.Err() != nil {
			return
		}
		f.Log.Debug("file events: engine events ended", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (f *FileEvents) follow(ctx context.Context, hc *http.Client) error {
	filters, _ := json.Marshal(map[string][]string{"type": {"container"}, "event": {"start", "die", "destroy"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?filters="+url.QueryEscape(string(filters)), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker events: %s", resp.Status)
	}
	// Subscribed first, listed second: a container started in between is in the listing or
	// in the stream.
	if err := f.relist(ctx, hc); err != nil {
		return err
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev json.RawMessage
		if err := dec.Decode(&ev); err != nil {
			return err
		}
		if err := f.relist(ctx, hc); err != nil {
			return err
		}
	}
}

func (f *FileEvents) relist(ctx context.Context, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/json", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker containers: %s", resp.Status)
	}
	var cs []Container
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		return fmt.Errorf("docker containers: %w", err)
	}
	f.setPaths(BindSources(cs, f.Shares))
	return nil
}
