package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// MachinePaths are bind sources meant in the machine itself, never on the host: the
// engine's socket, kernel interfaces, the machine's own configuration and engine state. A
// bind whose source is one of them, or lies under one, passes untouched, whatever the host
// has at that path. Everything else that is absolute is a host path.
var MachinePaths = []string{
	"/var/run/docker.sock", "/run/docker.sock",
	"/proc", "/sys", "/dev", "/run", "/var/run",
	"/etc", "/lib/modules", "/var/lib/docker", "/var/lib/containerd",
}

// Share is a host folder the machine shares, and where the machine sees it.
type Share struct {
	HostPath  string // as configured (C:\Users\ann on Windows)
	GuestPath string // /c/Users/ann
}

// Binds checks and translates the bind mounts of container create requests.
type Binds struct {
	// Machine names the machine in messages.
	Machine string
	// GOOS is the host's OS ("windows" reads C:\x and /c/x as host paths).
	GOOS   string
	Shares []Share
	// EvalSymlinks resolves a host path as the host sees it (filepath.EvalSymlinks when nil).
	EvalSymlinks func(string) (string, error)
}

// RefusedError is a create request that would mount something the machine cannot see.
type RefusedError struct{ msg string }

func (e *RefusedError) Error() string { return e.msg }

// volumeName is a named volume as Docker's local driver accepts it.
var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CheckCreate inspects the JSON body of POST /containers/create. It returns a *RefusedError
// for a bind of a host path outside every share (or a relative one), the body with host
// paths replaced by their machine paths when any differ (a symlink, a Windows path), or nil
// when the body can go as it is. A body it cannot read is left to the engine to judge.
func (b *Binds) CheckCreate(body []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top["HostConfig"] == nil {
		return nil, nil
	}
	var hc map[string]json.RawMessage
	if json.Unmarshal(top["HostConfig"], &hc) != nil {
		return nil, nil
	}
	changed := false
	if raw := hc["Binds"]; raw != nil {
		var binds []string
		if json.Unmarshal(raw, &binds) == nil {
			for i, s := range binds {
				nb, err := b.checkBind(s)
				if err != nil {
					return nil, err
				}
				if nb != s {
					binds[i], changed = nb, true
				}
			}
			hc["Binds"], _ = json.Marshal(binds)
		}
	}
	if raw := hc["Mounts"]; raw != nil {
		var mounts []map[string]json.RawMessage
		if json.Unmarshal(raw, &mounts) == nil {
			for _, m := range mounts {
				var typ, src string
				json.Unmarshal(m["Type"], &typ)
				if typ != "bind" || json.Unmarshal(m["Source"], &src) != nil {
					continue
				}
				ns, err := b.checkSource(src, "mount")
				if err != nil {
					return nil, err
				}
				if ns != src {
					m["Source"], _ = json.Marshal(ns)
					changed = true
				}
			}
			hc["Mounts"], _ = json.Marshal(mounts)
		}
	}
	if !changed {
		return nil, nil
	}
	top["HostConfig"], _ = json.Marshal(hc)
	out, err := json.Marshal(top)
	return out, err
}

// checkBind checks one HostConfig.Binds entry, SOURCE:TARGET[:OPTIONS], and returns it with
// the source in machine terms.
func (b *Binds) checkBind(spec string) (string, error) {
	src, rest := spec, ""
	start := 0
	if b.GOOS == "windows" && isDrive(spec) {
		start = 2 // C:\x:/y: the first colon is the drive's
	}
	if i := strings.IndexByte(spec[start:], ':'); i >= 0 {
		src, rest = spec[:start+i], spec[start+i:]
	}
	if rest == "" {
		return spec, nil // an anonymous volume: "/data"
	}
	ns, err := b.checkSource(src, "bind")
	if err != nil {
		return "", err
	}
	return ns + rest, nil
}

// checkSource returns the machine path of a bind source, or why it cannot be mounted.
func (b *Binds) checkSource(src, kind string) (string, error) {
	host, ok := b.hostPath(src)
	if !ok {
		if strings.HasPrefix(src, "/") {
			return src, nil // a machine path (allow-listed, or no host path on Windows)
		}
		if volumeName.MatchString(src) && kind == "bind" {
			return src, nil // a named volume
		}
		return "", &RefusedError{fmt.Sprintf("%s source %q is a relative path: the engine runs in machine %q and cannot tell which host folder it means; give an absolute path, such as \"$PWD/%s\"",
			kind, src, b.Machine, strings.TrimPrefix(src, "./"))}
	}
	resolved := b.resolve(host)
	for _, s := range b.Shares {
		if rel, ok := within(b.GOOS, b.resolve(s.HostPath), resolved); ok {
			return path.Join(s.GuestPath, rel), nil
		}
	}
	via := ""
	if resolved != host {
		via = fmt.Sprintf(" (it resolves to %s on the host)", resolved)
	}
	return "", &RefusedError{fmt.Sprintf("%s source %s%s is not shared with machine %q, so the engine would mount an empty folder made inside the machine; share it with `machine set %s --share %s` (stopped machine; add --restart to restart it), or use a path under a shared folder (%s)",
		kind, src, via, b.Machine, b.Machine, quoteArg(resolved), b.shareList())}
}

// hostPath says whether src names a host path, and which. Machine paths are not host paths.
func (b *Binds) hostPath(src string) (string, bool) {
	if b.GOOS == "windows" {
		if isDrive(src) && len(src) > 2 && (src[2] == '\\' || src[2] == '/') {
			return src, true
		}
		if len(src) >= 2 && src[0] == '/' && isLetter(src[1]) && (len(src) == 2 || src[2] == '/') && !isMachinePath(src) {
			return strings.ToUpper(src[1:2]) + `:\` + strings.ReplaceAll(strings.TrimPrefix(src[2:], "/"), "/", `\`), true
		}
		return "", false
	}
	if !strings.HasPrefix(src, "/") || isMachinePath(src) {
		return "", false
	}
	return src, true
}

func isMachinePath(p string) bool {
	p = path.Clean(p)
	for _, m := range MachinePaths {
		if p == m || strings.HasPrefix(p, m+"/") {
			return true
		}
	}
	return false
}

// resolve follows symlinks in p as the host does. For a path that does not exist yet (the
// engine would create it), the longest existing prefix is resolved and the rest kept.
func (b *Binds) resolve(p string) string {
	eval := b.EvalSymlinks
	if eval == nil {
		eval = filepath.EvalSymlinks
	}
	sep := "/"
	if b.GOOS == "windows" {
		p = strings.ReplaceAll(p, "/", `\`)
		sep = `\`
	}
	var rest []string
	cur := p
	for {
		r, err := eval(cur)
		if err == nil {
			return joinHost(b.GOOS, r, rest)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return cleanHost(b.GOOS, p)
		}
		i := strings.LastIndex(cur, sep)
		if i <= 0 || (b.GOOS == "windows" && i <= 2) {
			return cleanHost(b.GOOS, p)
		}
		rest = append([]string{cur[i+1:]}, rest...)
		cur = cur[:i]
	}
}

func cleanHost(goos, p string) string {
	if goos == "windows" {
		return strings.ReplaceAll(path.Clean(strings.ReplaceAll(p, `\`, "/")), "/", `\`)
	}
	return path.Clean(p)
}

func joinHost(goos, base string, rest []string) string {
	if goos == "windows" {
		return cleanHost(goos, strings.Join(append([]string{base}, rest...), `\`))
	}
	return path.Join(append([]string{base}, rest...)...)
}

// within reports whether p is base or under it, and the relative path (with slashes).
// Windows paths compare without regard to case or separator.
func within(goos, base, p string) (string, bool) {
	if goos == "windows" {
		base, p = strings.ReplaceAll(base, `\`, "/"), strings.ReplaceAll(p, `\`, "/")
		if len(p) >= len(base) && strings.EqualFold(p[:len(base)], base) {
			p = base + p[len(base):]
		}
	}
	base, p = path.Clean(base), path.Clean(p)
	if p == base {
		return "", true
	}
	prefix := strings.TrimSuffix(base, "/") + "/"
	if strings.HasPrefix(p, prefix) {
		return p[len(prefix):], true
	}
	return "", false
}

func (b *Binds) shareList() string {
	if len(b.Shares) == 0 {
		return "the machine shares no folders"
	}
	var s []string
	for _, sh := range b.Shares {
		s = append(s, sh.HostPath)
	}
	return "shared: " + strings.Join(s, ", ")
}

func quoteArg(p string) string {
	if strings.ContainsAny(p, " \t'\"$`\\") {
		return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	return p
}

func isDrive(s string) bool { return len(s) >= 2 && isLetter(s[0]) && s[1] == ':' }

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
