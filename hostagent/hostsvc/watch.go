package hostsvc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/machine-run/machine/guestagent/api"
)

// Share is a shared folder as both sides name it.
type Share struct {
	HostPath  string // as the host's OS spells it
	GuestPath string // absolute, slash-separated
}

// Defaults for file events.
const (
	// DefaultMaxWatchedDirs bounds the folders one machine watches (inotify watches on
	// Linux, open descriptors with kqueue on macOS): a huge tree is watched partly, and the
	// guest is told so, rather than exhausting the host.
	DefaultMaxWatchedDirs = 8192
	// DefaultCoalesce is how long a burst of host changes is gathered before it is sent:
	// each path goes once per burst.
	DefaultCoalesce = 20 * time.Millisecond
)

// maxWatchRequest bounds one WatchRequest line.
const maxWatchRequest = 1 << 20

// ToHost maps a guest path under one of shares to its host path; false when it is under none.
// The longest matching share wins.
func ToHost(shares []Share, guestPath string) (string, bool) {
	if !strings.HasPrefix(guestPath, "/") {
		return "", false
	}
	gp := path.Clean(guestPath)
	best, bestLen := "", -1
	for _, s := range shares {
		rest, ok := under(gp, s.GuestPath)
		if !ok || len(s.GuestPath) <= bestLen {
			continue
		}
		best, bestLen = filepath.Join(s.HostPath, filepath.FromSlash(rest)), len(s.GuestPath)
	}
	return best, bestLen >= 0
}

// ToGuest maps a host path under one of shares to its guest path.
func ToGuest(shares []Share, hostPath string) (string, bool) {
	hp := filepath.Clean(hostPath)
	best, bestLen := "", -1
	for _, s := range shares {
		root := filepath.Clean(s.HostPath)
		rel, err := filepath.Rel(root, hp)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || len(root) <= bestLen {
			continue
		}
		best, bestLen = path.Join(s.GuestPath, filepath.ToSlash(rel)), len(root)
	}
	return best, bestLen >= 0
}

// under returns p relative to root ("" for root itself) when p is root or inside it.
func under(p, root string) (string, bool) {
	root = path.Clean(root)
	if p == root {
		return "", true
	}
	if root == "/" {
		return p[1:], true
	}
	if rest, ok := strings.CutPrefix(p, root+"/"); ok {
		return rest, true
	}
	return "", false
}

// opOf maps an fsnotify event to a file event op; "" for changes that are not replayed
// (a bare attribute change, which is also what the guest's own replay causes on the host).
func opOf(op fsnotify.Op) string {
	switch {
	case op.Has(fsnotify.Create):
		return api.FileCreate
	case op.Has(fsnotify.Remove):
		return api.FileRemove
	case op.Has(fsnotify.Rename):
		return api.FileRename
	case op.Has(fsnotify.Write):
		return api.FileWrite
	}
	return ""
}

// merge keeps the structural op of a path over a write within one burst.
func merge(prev, next string) string {
	if prev == "" || prev == api.FileWrite {
		return next
	}
	return prev
}

// serveWatch watches the host folders the guest asks for and sends their changes.
func (s *Server) serveWatch(ctx context.Context, c net.Conn) {
	defer c.Close()
	enc := json.NewEncoder(c)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		enc.Encode(api.FileEvents{Error: "host: file watcher: " + err.Error()})
		return
	}
	defer w.Close()
	reqs := make(chan api.WatchRequest)
	go func() {
		defer close(reqs)
		sc := bufio.NewScanner(c)
		sc.Buffer(make([]byte, 64<<10), maxWatchRequest)
		for sc.Scan() {
			var r api.WatchRequest
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	t := &tree{w: w, max: s.MaxWatchedDirs}
	if t.max <= 0 {
		t.max = DefaultMaxWatchedDirs
	}
	coalesce := s.Coalesce
	if coalesce <= 0 {
		coalesce = DefaultCoalesce
	}
	pending := map[string]string{}
	var flush <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-reqs:
			if !ok {
				return
			}
			if msg := t.set(s.hostRoots(r.Paths)); msg != "" {
				s.Log.Warn("file events", "err", msg)
				if enc.Encode(api.FileEvents{Error: msg}) != nil {
					return
				}
			}
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			op := opOf(ev.Op)
			if op == "" {
				continue
			}
			if op == api.FileCreate {
				t.addNew(ev.Name)
			}
			gp, ok := ToGuest(s.Shares, ev.Name)
			if !ok {
				continue
			}
			pending[gp] = merge(pending[gp], op)
			if flush == nil {
				flush = time.After(coalesce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.Log.Warn("file events: watcher", "err", err)
		case <-flush:
			flush = nil
			batch := api.FileEvents{}
			for p, op := range pending {
				batch.Events = append(batch.Events, api.FileEvent{Path: p, Op: op})
			}
			clear(pending)
			sort.Slice(batch.Events, func(i, j int) bool { return batch.Events[i].Path < batch.Events[j].Path })
			if enc.Encode(batch) != nil {
				return
			}
		}
	}
}

// hostRoots maps the requested guest paths to host paths, dropping any outside the shares.
func (s *Server) hostRoots(paths []string) []string {
	var out []string
	for _, p := range paths {
		if hp, ok := ToHost(s.Shares, p); ok {
			out = append(out, hp)
		}
	}
	sort.Strings(out)
	return out
}

// tree is the set of watched folders: every folder under each root, up to max.
type tree struct {
	w     *fsnotify.Watcher
	max   int
	roots []string
	n     int
	full  bool
}

// set replaces the watched roots (when they changed) and returns a message when the bound
// cut the watch short.
func (t *tree) set(roots []string) string {
	if equal(roots, t.roots) {
		return ""
	}
	for _, p := range t.w.WatchList() {
		t.w.Remove(p)
	}
	t.roots, t.n, t.full = roots, 0, false
	var errs []error
	for _, r := range roots {
		if err := t.add(r); err != nil {
			errs = append(errs, err)
		}
	}
	if t.full {
		errs = append(errs, fmt.Errorf("more than %d folders under %s: only the first %d are watched", t.max, strings.Join(roots, ", "), t.max))
	}
	if len(errs) > 0 {
		return errors.Join(errs...).Error()
	}
	return ""
}

// add watches root and every folder under it, within the bound.
func (t *tree) add(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return fmt.Errorf("watch %s: %w", root, err)
			}
			return nil // a folder that vanished or cannot be read is skipped
		}
		if !d.IsDir() && p != root {
			return nil
		}
		if t.n >= t.max {
			t.full = true
			return filepath.SkipAll
		}
		if err := t.w.Add(p); err != nil {
			if p == root {
				return fmt.Errorf("watch %s: %w", root, err)
			}
			return nil
		}
		t.n++
		return nil
	})
}

// addNew watches a folder created under a watched one (fsnotify does not recurse).
func (t *tree) addNew(p string) {
	if isDir(p) {
		t.add(p)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}
