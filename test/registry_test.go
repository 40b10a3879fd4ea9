//go:build e2e

package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// registry runs Debian's docker-registry (Distribution 2.8) on a free loopback port with
// its own config and storage, and returns its host:port and storage folder.
func startRegistry(t *testing.T) (host, storage string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry is needed (scripts/install-deps.sh): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host = l.Addr().String()
	l.Close()
	dir := t.TempDir()
	storage = filepath.Join(dir, "storage")
	config := filepath.Join(dir, "config.yml")
	os.WriteFile(config, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", storage, host)), 0o600)
	cmd := exec.Command(bin, "serve", config)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return host, storage, stop
			}
		}
		if time.Now().After(end) {
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", host, err, logs.String())
		}
	}
}

// cutProxy forwards TCP to target and cuts the first connection whose responses pass
// cutAfter bytes. It records each request's first line and Range header, and how many
// response bytes passed before and after the cut.
type cutProxy struct {
	target   string
	cutAfter int64
	cut      atomic.Bool
	before   atomic.Int64 // response bytes on the cut connection, up to the cut
	after    atomic.Int64 // response bytes on connections opened after the cut
	mu       sync.Mutex
	requests []proxiedRequest
}

type proxiedRequest struct {
	line, rng string
	afterCut  bool
}

func (p *cutProxy) serve(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.handle(c)
		}
	}()
	return l.Addr().String()
}

var rangeHeader = regexp.MustCompile(`(?im)^range:\s*(\S+)\r?$`)

func (p *cutProxy) handle(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	afterCut := p.cut.Load()
	go func() { // requests: parse their heads, pass them on
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				up.(*net.TCPConn).CloseWrite()
				return
			}
			p.mu.Lock()
			p.requests = append(p.requests, proxiedRequest{line: req.Method + " " + req.URL.Path, rng: req.Header.Get("Range"), afterCut: afterCut})
			p.mu.Unlock()
			if err := req.Write(up); err != nil {
				return
			}
		}
	}()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		k, err := up.Read(buf)
		if k > 0 {
			if !afterCut && !p.cut.Load() && n+int64(k) > p.cutAfter {
				k = int(p.cutAfter - n)
				c.Write(buf[:k])
				p.before.Store(n + int64(k))
				p.cut.Store(true)
				c.(*net.TCPConn).SetLinger(0)
				return // closes both sides mid-body
			}
			if _, werr := c.Write(buf[:k]); werr != nil {
				return
			}
			n += int64(k)
			if afterCut {
				p.after.Add(int64(k))
			}
		}
		if err != nil {
			return
		}
	}
}

// pulled is `machine image pull --format json`.
type pulled struct {
	Digest     string  `json:"digest"`
	Index      string  `json:"index_digest"`
	Arch       string  `json:"arch"`
	Size       int64   `json:"size"`
	Dir        string  `json:"dir"`
	Cached     bool    `json:"cached"`
	Downloaded int64   `json:"downloaded"`
	Seconds    float64 `json:"seconds"`
}

func pullJSON(t *testing.T, args ...string) (pulled, result) {
	t.Helper()
	began := time.Now()
	r := run(t, 10*time.Minute, "", env.bin, append([]string{"image", "pull", "--format", "json"}, args...)...)
	took := time.Since(began)
	var p pulled
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("image pull --format json printed something else on stdout: %v\n%s", err, r.stdout)
		}
		p.Seconds = took.Seconds() // the whole command, as a user times it
	}
	return p, r
}

// cacheFiles lists the files under a cache folder.
func cacheFiles(dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// digestOf is the manifest digest of a built image folder, as `image push` prints it.
var pushedLine = regexp.MustCompile(`(?m)^  (amd64|arm64) (sha256:[0-9a-f]{64})`)

// TestRegistry pushes both built architectures to a real registry as one index, pulls
// them back (tampered, interrupted, cold, cached), boots a machine from the pulled image
// with no image built in its cache, and boots another from an exported-then-imported one
// with the registry gone.
func TestRegistry(t *testing.T) {
	arch := hostArch()
	built := os.Getenv("MACHINE_CACHE")
	latestImage(t, "amd64")
	latestImage(t, "arm64")
	host, storage, stopRegistry := startRegistry(t)
	ref := host + "/machine/guest:e2e"
	caches := t.TempDir()
	useCache := func(name string) string {
		d := filepath.Join(caches, name)
		t.Setenv("MACHINE_CACHE", d)
		return d
	}
	digests := map[string]string{}
	var rootBlob string
	var rootSize int64

	t.Run("push both architectures as one index", func(t *testing.T) {
		if built != "" {
			t.Setenv("MACHINE_CACHE", built)
		}
		out := machine(t, "image", "push", ref)
		if !strings.Contains(out, "Pushed "+ref+" index sha256:") {
			t.Fatalf("push printed %q", out)
		}
		for _, m := range pushedLine.FindAllStringSubmatch(out, -1) {
			digests[m[1]] = m[2]
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/machine/guest/manifests/e2e", nil)
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var idx struct {
			MediaType string `json:"mediaType"`
			Manifests []struct {
				Digest, ArtifactType string
				Platform             struct{ OS, Architecture string }
			} `json:"manifests"`
		}
		json.NewDecoder(resp.Body).Decode(&idx)
		resp.Body.Close()
		if idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != 2 {
			t.Fatalf("registry serves %+v for %s", idx, ref)
		}
		for _, m := range idx.Manifests {
			if m.Platform.OS != "linux" || digests[m.Platform.Architecture] != m.Digest {
				t.Errorf("index entry %+v, push printed %v", m, digests)
			}
		}
		// The root layer of the host's architecture, for the tamper and resume steps.
		req, _ = http.NewRequest(http.MethodGet, "http://"+host+"/v2/machine/guest/manifests/"+digests[arch], nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var man struct {
			ArtifactType string `json:"artifactType"`
			Layers       []struct {
				MediaType, Digest string
				Size              int64
			} `json:"layers"`
		}
		json.NewDecoder(resp.Body).Decode(&man)
		resp.Body.Close()
		if man.ArtifactType != "application/vnd.machine-run.image.v1" || len(man.Layers) != 3 {
			t.Fatalf("image manifest %+v", man)
		}
		rootBlob, rootSize = man.Layers[2].Digest, man.Layers[2].Size
	})

	t.Run("a tampered blob is refused and the cache stays clean", func(t *testing.T) {
		hex := strings.TrimPrefix(rootBlob, "sha256:")
		data := filepath.Join(storage, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
		orig, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(orig)
		bad[len(bad)/2] ^= 0xff
		os.WriteFile(data, bad, 0o644)
		defer os.WriteFile(data, orig, 0o644)
		cache := useCache("tampered")
		_, r := pullJSON(t, ref)
		if r.code == 0 || !strings.Contains(r.stderr, "root blob "+rootBlob) || !strings.Contains(r.stderr, ref) || !strings.Contains(r.stderr, "digest mismatch") {
			t.Fatalf("pull of a tampered root: exit %d\n%s", r.code, r.stderr)
		}
		for _, f := range cacheFiles(cache) {
			if strings.Contains(f, hex) || strings.HasPrefix(f, "pulled") || strings.HasSuffix(f, ".partial") {
				t.Errorf("refused pull left %s in the cache", f)
			}
		}
		if out := machine(t, "image", "ls", "--format", "json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("image ls after a refused pull: %s", out)
		}
	})

	t.Run("an interrupted pull resumes with a range request and verifies", func(t *testing.T) {
		p := &cutProxy{target: host, cutAfter: 40 << 20} // beyond kernel + initramfs: inside the root
		proxied := p.serve(t) + "/machine/guest:e2e"
		useCache("resumed")
		got, r := pullJSON(t, "--arch", arch, proxied)
		if r.code != 0 {
			t.Fatalf("pull through the cutting proxy: exit %d\n%s", r.code, r.stderr)
		}
		if !p.cut.Load() || got.Digest != digests[arch] {
			t.Fatalf("cut %v, pulled %+v", p.cut.Load(), got)
		}
		var resumed *proxiedRequest
		p.mu.Lock()
		for i, q := range p.requests {
			if q.afterCut && strings.HasSuffix(q.line, rootBlob) {
				resumed = &p.requests[i]
			}
		}
		p.mu.Unlock()
		if resumed == nil || !strings.HasPrefix(resumed.rng, "bytes=") {
			t.Fatalf("no range request for the root after the cut: %+v", p.requests)
		}
		from, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(resumed.rng, "bytes="), "-"+strconv.FormatInt(rootSize-1, 10)), 10, 64)
		if from <= 0 || p.after.Load() >= rootSize {
			t.Errorf("resumed at byte %d; %d bytes sent after the cut for a %d-byte root", from, p.after.Load(), rootSize)
		}
		if got.Downloaded > got.Size+64<<10 {
			t.Errorf("downloaded %d bytes for a %d-byte image: the resume re-fetched what it had", got.Downloaded, got.Size)
		}
		t.Logf("MEASURE resume: root blob %d bytes; connection cut after %d response bytes; resumed with Range %s; %d bytes sent after the cut; image verified (%s)",
			rootSize, p.before.Load(), resumed.rng, p.after.Load(), got.Digest)
		t.Logf("stderr of the resumed pull:\n%s", r.stderr)
	})

	cold := ""
	t.Run("cold pull, then a second pull is a cache hit", func(t *testing.T) {
		cold = useCache("cold")
		got, r := pullJSON(t, ref)
		if r.code != 0 || got.Cached || got.Digest != digests[arch] || got.Index == "" {
			t.Fatalf("cold pull: %+v\n%s", got, r.stderr)
		}
		t.Logf("MEASURE cold pull (machine image pull %s, empty cache): %d bytes in %.2f s = %.1f MB/s", ref, got.Downloaded, got.Seconds, float64(got.Downloaded)/got.Seconds/1e6)
		again, r := pullJSON(t, ref)
		if r.code != 0 || !again.Cached || again.Downloaded != 0 || again.Digest != got.Digest {
			t.Fatalf("second pull: %+v\n%s", again, r.stderr)
		}
		t.Logf("MEASURE cache hit (second machine image pull %s): %.3f s, 0 blob bytes", ref, again.Seconds)
	})

	t.Run("first start pulls MACHINE_IMAGE into an empty cache and boots it", func(t *testing.T) {
		const name = "regpull"
		defer dumpLogs(t, name)
		useCache("first-start")
		t.Setenv("MACHINE_IMAGE", ref)
		defer machine(t, "rm", "--force", name)
		r := run(t, 15*time.Minute, "", env.bin, "start", name, "--share=")
		if r.code != 0 {
			t.Fatalf("start: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "Pulling "+ref+" (MACHINE_IMAGE)") || !strings.Contains(r.stderr, "root") {
			t.Errorf("start did not show the pull: %s", r.stderr)
		}
		var cfg struct {
			ImageDigest string `json:"image_digest"`
			ImageRef    string `json:"image_ref"`
		}
		b, _ := os.ReadFile(filepath.Join(env.home, name, "config.json"))
		json.Unmarshal(b, &cfg)
		if cfg.ImageDigest != digests[arch] || cfg.ImageRef != ref {
			t.Errorf("config.json records %+v, want %s from %s", cfg, digests[arch], ref)
		}
		ctx := "machine-" + name
		docker(t, ctx, string(busyboxRootfs(t)), "import", "--change", `CMD ["/bin/sh"]`, "-", "busybox:e2e")
		if out := docker(t, ctx, "", "run", "--rm", "busybox:e2e", "echo", "hello from a pulled image"); out != "hello from a pulled image\n" {
			t.Errorf("docker run printed %q", out)
		}
		rm := run(t, time.Minute, "", env.bin, "image", "rm", ref)
		// Other tests' machines in this run's MACHINE_HOME may boot the same digest (a local
		// build and its pushed copy share one), so the list can name more than this one.
		if rm.code == 0 || !strings.Contains(rm.stderr, "in use by machine") || !strings.Contains(rm.stderr, name) {
			t.Errorf("image rm of the image %s boots: exit %d, %s", name, rm.code, rm.stderr)
		}
		machine(t, "stop", name)
	})

	t.Run("export, then import into an empty cache with the registry gone, boots", func(t *testing.T) {
		const name = "regimport"
		defer dumpLogs(t, name)
		t.Setenv("MACHINE_CACHE", cold)
		tarball := filepath.Join(t.TempDir(), "guest.tar")
		machine(t, "image", "export", ref, tarball)
		stopRegistry()
		useCache("imported")
		if out := machine(t, "image", "import", tarball); !strings.Contains(out, "Imported "+ref+" ("+arch+") "+digests[arch]) {
			t.Fatalf("import printed %q", out)
		}
		defer machine(t, "rm", "--force", name)
		machine(t, "start", name, "--image", ref, "--share=")
		if out := docker(t, "machine-"+name, string(busyboxRootfs(t)), "import", "-", "busybox:e2e"); out == "" {
			t.Errorf("docker import printed nothing")
		}
		if out := docker(t, "machine-"+name, "", "run", "--rm", "busybox:e2e", "/bin/echo", "imported"); out != "imported\n" {
			t.Errorf("docker run printed %q", out)
		}
		machine(t, "stop", name)
	})
}

var _ = io.Discard
