package dockerapi

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeFS resolves symlinks from a table: a key and everything under it maps to its value;
// paths under missing do not exist.
type fakeFS struct {
	links   map[string]string
	missing []string
	sep     string
}

func (f fakeFS) eval(p string) (string, error) {
	for _, m := range f.missing {
		if p == m || strings.HasPrefix(p, m+f.sep) {
			return "", &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
		}
	}
	for from, to := range f.links {
		if p == from {
			return to, nil
		}
		if strings.HasPrefix(p, from+f.sep) {
			return to + p[len(from):], nil
		}
	}
	return p, nil
}

func createBody(binds []string, mounts ...map[string]any) []byte {
	hc := map[string]any{"Binds": binds, "NetworkMode": "default"}
	if mounts != nil {
		hc["Mounts"] = mounts
	}
	b, _ := json.Marshal(map[string]any{"Image": "busybox", "Cmd": []string{"ls"}, "HostConfig": hc})
	return b
}

func TestCheckCreate(t *testing.T) {
	unix := fakeFS{sep: "/",
		links:   map[string]string{"/Users/ann/link": "/Volumes/ext/proj", "/tmp": "/private/tmp", "/Users/ann/inside": "/Users/ann/src"},
		missing: []string{"/Users/ann/new"}}
	win := fakeFS{sep: `\`}
	unixShares := []Share{{HostPath: "/Users/ann", GuestPath: "/Users/ann"}, {HostPath: "/private/tmp", GuestPath: "/private/tmp"}}
	winShares := []Share{{HostPath: `C:\Users\Ann`, GuestPath: "/c/Users/Ann"}}
	tests := []struct {
		name   string
		goos   string
		binds  []string
		mounts []map[string]any
		// wantBinds/wantMount: the translated body's values (nil: body unchanged)
		wantBinds []string
		wantMount string
		refused   string // substring of the refusal
	}{
		{name: "shared folder", goos: "darwin", binds: []string{"/Users/ann/src:/src"}},
		{name: "share itself with options", goos: "darwin", binds: []string{"/Users/ann:/home:ro,rslave"}},
		{name: "named volume", goos: "darwin", binds: []string{"data:/data", "my_vol.1:/x:ro"}},
		{name: "anonymous volume", goos: "darwin", binds: []string{"/data"}},
		{name: "docker socket", goos: "darwin", binds: []string{"/var/run/docker.sock:/var/run/docker.sock"}},
		{name: "machine paths", goos: "linux", binds: []string{"/proc:/host/proc:ro", "/etc/localtime:/etc/localtime:ro", "/lib/modules:/lib/modules"}},
		{name: "unshared", goos: "darwin", binds: []string{"/opt/x:/x"}, refused: "bind source /opt/x is not shared with machine \"m\""},
		{name: "unshared hint", goos: "darwin", binds: []string{"/opt/x:/x"}, refused: "machine set m --share /opt/x"},
		{name: "dotdot escapes share", goos: "darwin", binds: []string{"/Users/ann/../bob:/x"}, refused: "/Users/ann/../bob"},
		{name: "symlink out of share", goos: "darwin", binds: []string{"/Users/ann/link/sub:/x"}, refused: "resolves to /Volumes/ext/proj/sub on the host"},
		{name: "symlink into share", goos: "darwin", binds: []string{"/tmp/work:/w:ro"}, wantBinds: []string{"/private/tmp/work:/w:ro"}},
		{name: "symlink within share", goos: "darwin", binds: []string{"/Users/ann/inside:/w"}, wantBinds: []string{"/Users/ann/src:/w"}},
		{name: "missing path under share", goos: "darwin", binds: []string{"/Users/ann/new/dir:/n"}},
		{name: "relative dot", goos: "darwin", binds: []string{"./src:/src"}, refused: "is a relative path"},
		{name: "relative dotdot", goos: "darwin", binds: []string{"../src:/src"}, refused: "is a relative path"},
		{name: "relative nested", goos: "linux", binds: []string{"src/app:/src"}, refused: "is a relative path"},
		{name: "second bind refused", goos: "darwin", binds: []string{"/Users/ann:/a", "/srv:/b"}, refused: "/srv"},
		{name: "mount bind shared", goos: "darwin", mounts: []map[string]any{{"Type": "bind", "Source": "/Users/ann/src", "Target": "/src"}}},
		{name: "mount bind unshared", goos: "darwin", mounts: []map[string]any{{"Type": "bind", "Source": "/srv/data", "Target": "/d"}}, refused: "mount source /srv/data is not shared"},
		{name: "mount bind relative", goos: "darwin", mounts: []map[string]any{{"Type": "bind", "Source": "data", "Target": "/d"}}, refused: "relative path"},
		{name: "mount bind symlink", goos: "darwin", mounts: []map[string]any{{"Type": "bind", "Source": "/tmp/x", "Target": "/d", "ReadOnly": true}}, wantMount: "/private/tmp/x"},
		{name: "mount volume ignored", goos: "darwin", mounts: []map[string]any{{"Type": "volume", "Source": "anything/at/all", "Target": "/d"}}},
		{name: "mount docker socket", goos: "darwin", mounts: []map[string]any{{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s"}}},
		{name: "windows drive path", goos: "windows", binds: []string{`C:\Users\Ann\src:/src`}, wantBinds: []string{"/c/Users/Ann/src:/src"}},
		{name: "windows forward slashes and case", goos: "windows", binds: []string{`c:/users/ann/src:/src:ro`}, wantBinds: []string{"/c/Users/Ann/src:/src:ro"}},
		{name: "windows guest form", goos: "windows", binds: []string{"/c/Users/Ann/src:/src"}},
		{name: "windows unshared drive", goos: "windows", binds: []string{`D:\data:/d`}, refused: `D:\data is not shared`},
		{name: "windows unshared guest form", goos: "windows", binds: []string{"/d/data:/d"}, refused: `/d/data is not shared`},
		{name: "windows docker socket", goos: "windows", binds: []string{"/var/run/docker.sock:/var/run/docker.sock"}},
		{name: "windows named volume", goos: "windows", binds: []string{"cache:/cache"}},
		{name: "windows mount", goos: "windows", mounts: []map[string]any{{"Type": "bind", "Source": `C:\Users\Ann\x`, "Target": "/x"}}, wantMount: "/c/Users/Ann/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Binds{Machine: "m", GOOS: tt.goos, Shares: unixShares, EvalSymlinks: unix.eval}
			if tt.goos == "windows" {
				b.Shares, b.EvalSymlinks = winShares, win.eval
			}
			in := createBody(tt.binds, tt.mounts...)
			out, err := b.CheckCreate(in)
			if tt.refused != "" {
				var re *RefusedError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("CheckCreate = %v; want a refusal containing %q", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckCreate: %v", err)
			}
			if tt.wantBinds == nil && tt.wantMount == "" {
				if out != nil {
					t.Fatalf("body changed to %s; want it passed as is", out)
				}
				return
			}
			var got struct {
				Image      string
				HostConfig struct {
					Binds       []string
					NetworkMode string
					Mounts      []struct{ Source, Target string }
				}
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.Image != "busybox" || got.HostConfig.NetworkMode != "default" {
				t.Errorf("other fields lost: %s", out)
			}
			if tt.wantBinds != nil && strings.Join(got.HostConfig.Binds, " ") != strings.Join(tt.wantBinds, " ") {
				t.Errorf("Binds = %q, want %q", got.HostConfig.Binds, tt.wantBinds)
			}
			if tt.wantMount != "" && (len(got.HostConfig.Mounts) != 1 || got.HostConfig.Mounts[0].Source != tt.wantMount) {
				t.Errorf("Mounts = %+v, want source %s", got.HostConfig.Mounts, tt.wantMount)
			}
		})
	}
}

func TestCheckCreateIgnoresWhatItCannotRead(t *testing.T) {
	b := &Binds{Machine: "m", GOOS: "linux"}
	for _, body := range []string{``, `not json`, `{"Image":"x"}`, `{"HostConfig":{"Binds":"odd"}}`, `{"HostConfig":null}`} {
		if out, err := b.CheckCreate([]byte(body)); out != nil || err != nil {
			t.Errorf("CheckCreate(%q) = %s, %v; want it left to the engine", body, out, err)
		}
	}
}

// TestCheckCreateRealSymlinks resolves through the real file system.
func TestCheckCreateRealSymlinks(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{filepath.Join(share, "src"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(share, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(share, "src"), filepath.Join(dir, "in")); err != nil {
		t.Fatal(err)
	}
	b := &Binds{Machine: "m", GOOS: "linux", Shares: []Share{{HostPath: share, GuestPath: share}}}
	if _, err := b.CheckCreate(createBody([]string{share + "/escape:/x"})); err == nil || !strings.Contains(err.Error(), "resolves to "+outside) {
		t.Errorf("a symlink out of the share: %v; want refused, naming %s", err, outside)
	}
	out, err := b.CheckCreate(createBody([]string{dir + "/in/../src:/x"}))
	if err != nil || !strings.Contains(string(out), share+"/src:/x") {
		t.Errorf("a symlink into the share: %s, %v; want the source rewritten to %s/src", out, err, share)
	}
}
