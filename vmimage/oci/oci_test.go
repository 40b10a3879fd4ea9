package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/machine-run/machine/vmimage"
)

// fakeImage writes a built-image folder for arch whose root file is rootSize random bytes.
func fakeImage(t *testing.T, arch string, rootSize int) string {
	t.Helper()
	dir := t.TempDir()
	m := vmimage.Manifest{
		SchemaVersion: vmimage.SchemaVersion, Arch: arch, Suite: "trixie", KernelRelease: "6.12.0-test-" + arch,
		AgentVersion: "abc123", Engine: vmimage.EngineVersions{Dockerd: "26.1.5", Containerd: "1.7.24", Runc: "1.1.15"},
	}
	for _, f := range []struct {
		role, name string
		size       int
	}{{vmimage.RoleKernel, "vmlinuz", 4096}, {vmimage.RoleInitramfs, "initramfs.img", 8192}, {vmimage.RoleRoot, "root.img", rootSize}} {
		b := make([]byte, f.size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		m.Files = append(m.Files, vmimage.File{Role: f.role, Name: f.name, Size: int64(f.size), SHA256: hex.EncodeToString(s[:])})
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, vmimage.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// recorder wraps a registry handler: it logs blob GETs and lets a test rewrite them.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	gets []*http.Request
	// serve, if set, may answer a blob GET itself (return true) instead of the registry.
	serve func(w http.ResponseWriter, r *http.Request, n int) bool
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
		rec.mu.Lock()
		rec.gets = append(rec.gets, r)
		n := len(rec.gets)
		rec.mu.Unlock()
		if rec.serve != nil && rec.serve(w, r, n) {
			return
		}
	}
	rec.next.ServeHTTP(w, r)
}

func (rec *recorder) blobGets() []*http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*http.Request(nil), rec.gets...)
}

func newRegistry(t *testing.T) (host string, rec *recorder) {
	rec = &recorder{next: registry.New(registry.Logger(nopLogger()))}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), rec
}

func testRemote() Remote { return Remote{Keychain: authn.NewMultiKeychain()} }

func pull(t *testing.T, c *Cache, ref, arch string) (*Image, error) {
	t.Helper()
	return c.Pull(context.Background(), ref, PullOptions{Remote: testRemote(), Arch: arch})
}

// pushedV1 starts a registry, pushes one amd64 image of rootSize bytes as machine/image:v1
// and returns its reference, the registry's request recorder and an empty cache.
func pushedV1(t *testing.T, rootSize int) (ref string, rec *recorder, c *Cache) {
	t.Helper()
	host, rec := newRegistry(t)
	ref = host + "/machine/image:v1"
	r := testRemote()
	if _, err := r.Push(context.Background(), ref, fakeImage(t, "amd64", rootSize)); err != nil {
		t.Fatal(err)
	}
	return ref, rec, &Cache{Dir: t.TempDir()}
}

// mustPull pulls ref for amd64 into c and fails the test on error.
func mustPull(t *testing.T, c *Cache, ref string) *Image {
	t.Helper()
	img, err := pull(t, c, ref, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	for _, n := range []string{"vmlinuz", "initramfs.img", "root.img", vmimage.ManifestName} {
		a, _ := os.ReadFile(filepath.Join(want, n))
		b, err := os.ReadFile(filepath.Join(got, n))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between %s and %s (%v)", n, want, got, err)
		}
	}
}

func TestPushPullSingleArch(t *testing.T) {
	host, _ := newRegistry(t)
	src := fakeImage(t, "amd64", 100_000)
	r := testRemote()
	ref := host + "/machine/image:v1"
	pushed, err := r.Push(context.Background(), ref, src)
	if err != nil {
		t.Fatal(err)
	}
	local, err := Digest(src)
	if err != nil || local != pushed {
		t.Fatalf("Digest(dir) = %s, %v; push wrote %s", local, err, pushed)
	}
	c := &Cache{Dir: t.TempDir()}
	img, err := pull(t, c, ref, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != pushed || img.Cached || img.Arch != "amd64" || img.Kernel != "6.12.0-test-amd64" || img.Engine != "26.1.5" {
		t.Fatalf("pulled %+v, pushed %s", img, pushed)
	}
	m, err := vmimage.Load(img.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(img.Dir); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, src, img.Dir)
	if got, _ := Digest(img.Dir); got != pushed {
		t.Errorf("Digest of the pulled folder = %s, want %s", got, pushed)
	}
	// Only an index can serve another architecture.
	if _, err := pull(t, c, ref, "arm64"); err == nil || !strings.Contains(err.Error(), "is for amd64, not arm64") {
		t.Errorf("pull of an amd64 image for arm64: %v", err)
	}
}

func TestPushIndexPullEachArch(t *testing.T) {
	host, _ := newRegistry(t)
	amd, arm := fakeImage(t, "amd64", 50_000), fakeImage(t, "arm64", 60_000)
	r := testRemote()
	ref := host + "/machine/image:multi"
	indexDigest, err := r.Push(context.Background(), ref, amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: t.TempDir()}
	for arch, src := range map[string]string{"amd64": amd, "arm64": arm} {
		img, err := pull(t, c, ref, arch)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Digest(src)
		if img.Arch != arch || img.Digest != want || img.Index != indexDigest {
			t.Errorf("pull --arch %s = %+v, want digest %s from index %s", arch, img, want, indexDigest)
		}
		sameFiles(t, src, img.Dir)
		if got, err := c.Lookup(ref, arch); err != nil || got.Digest != want {
			t.Errorf("Lookup(%s) = %+v, %v", arch, got, err)
		}
	}
	var rf refsFile
	b, err := os.ReadFile(filepath.Join(c.Dir, "refs.json"))
	if err != nil || json.Unmarshal(b, &rf) != nil || len(rf.Refs) != 2 {
		t.Fatalf("refs.json = %s, %v", b, err)
	}
	for _, e := range rf.Refs {
		if e.Ref != ref || e.Index != indexDigest {
			t.Errorf("refs.json entry %+v", e)
		}
	}
	if _, err := pull(t, c, ref, "riscv64"); err == nil || !strings.Contains(err.Error(), "no linux/riscv64 image") {
		t.Errorf("pull of a missing arch: %v", err)
	}
}

func TestSecondPullIsCacheHit(t *testing.T) {
	ref, rec, c := pushedV1(t, 10_000)
	first := mustPull(t, c, ref)
	if n := len(rec.blobGets()); n != 4 { // config + kernel + initramfs + root
		t.Fatalf("first pull made %d blob GETs, want 4", n)
	}
	second := mustPull(t, c, ref)
	if n := len(rec.blobGets()); n != 4 || !second.Cached || second.Downloaded != 0 || second.Digest != first.Digest {
		t.Errorf("second pull: %d blob GETs in all, %+v", n, second)
	}
}

func listFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestTamperedBlobLeavesCacheClean(t *testing.T) {
	host, rec := newRegistry(t)
	src := fakeImage(t, "amd64", 200_000)
	m, _ := vmimage.Load(src)
	rootHex := m.Files[2].SHA256
	ref := host + "/machine/image:v1"
	r := testRemote()
	if _, err := r.Push(context.Background(), ref, src); err != nil {
		t.Fatal(err)
	}
	rec.serve = func(w http.ResponseWriter, req *http.Request, _ int) bool {
		if !strings.HasSuffix(req.URL.Path, rootHex) {
			return false
		}
		b, _ := os.ReadFile(filepath.Join(src, "root.img"))
		b[len(b)/2] ^= 0xff // same size, one byte flipped
		w.Header().Set("Content-Length", "200000")
		w.Write(b)
		return true
	}
	c := &Cache{Dir: t.TempDir()}
	_, err := pull(t, c, ref, "amd64")
	var de *DigestError
	if !errors.As(err, &de) || !errors.Is(err, ErrDigest) {
		t.Fatalf("pull of a tampered blob: %v, want a DigestError", err)
	}
	for _, want := range []string{"root blob sha256:" + rootHex, ref} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	for _, f := range listFiles(t, c.Dir) {
		if strings.Contains(f, rootHex) || strings.HasPrefix(f, "pulled") || f == "refs.json" {
			t.Errorf("tampered pull left %s in the cache", f)
		}
	}
	if imgs, _ := c.List(); len(imgs) != 0 {
		t.Errorf("cache lists %d images after a failed pull", len(imgs))
	}
}

func TestInterruptedDownloadResumesWithRange(t *testing.T) {
	host, rec := newRegistry(t)
	const size, cut = 300_000, 120_000
	src := fakeImage(t, "amd64", size)
	m, _ := vmimage.Load(src)
	rootHex := m.Files[2].SHA256
	ref := host + "/machine/image:v1"
	r := testRemote()
	if _, err := r.Push(context.Background(), ref, src); err != nil {
		t.Fatal(err)
	}
	cutDone := false
	rec.serve = func(w http.ResponseWriter, req *http.Request, _ int) bool {
		if !strings.HasSuffix(req.URL.Path, rootHex) || cutDone {
			return false
		}
		cutDone = true
		b, _ := os.ReadFile(filepath.Join(src, "root.img"))
		w.Header().Set("Content-Length", "300000")
		w.WriteHeader(http.StatusOK)
		w.Write(b[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	c := &Cache{Dir: t.TempDir()}
	img, err := pull(t, c, ref, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	var rootGets []*http.Request
	for _, g := range rec.blobGets() {
		if strings.HasSuffix(g.URL.Path, rootHex) {
			rootGets = append(rootGets, g)
		}
	}
	if len(rootGets) != 2 || rootGets[0].Header.Get("Range") != "" {
		t.Fatalf("root blob GETs: %d, first Range %q", len(rootGets), rootGets[0].Header.Get("Range"))
	}
	if got := rootGets[1].Header.Get("Range"); got != "bytes=120000-299999" {
		t.Errorf("resumed request Range = %q, want bytes=120000-299999", got)
	}
	sameFiles(t, src, img.Dir)
	if img.Downloaded != size+4096+8192+int64(len(mustRead(t, filepath.Join(src, vmimage.ManifestName)))) {
		t.Errorf("downloaded %d bytes in all; the resume re-sent bytes it had", img.Downloaded)
	}
	if _, err := os.Stat(c.blobPath(mustHash(t, "sha256:"+rootHex)) + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial file still there: %v", err)
	}
}

func TestPartialFileFromAnEarlierPullIsResumed(t *testing.T) {
	host, rec := newRegistry(t)
	src := fakeImage(t, "amd64", 100_000)
	m, _ := vmimage.Load(src)
	rootHex := m.Files[2].SHA256
	ref := host + "/machine/image:v1"
	r := testRemote()
	if _, err := r.Push(context.Background(), ref, src); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: t.TempDir()}
	b := mustRead(t, filepath.Join(src, "root.img"))
	part := c.blobPath(mustHash(t, "sha256:"+rootHex)) + ".partial"
	os.MkdirAll(filepath.Dir(part), 0o755)
	os.WriteFile(part, b[:40_000], 0o644)
	if _, err := pull(t, c, ref, "amd64"); err != nil {
		t.Fatal(err)
	}
	for _, g := range rec.blobGets() {
		if strings.HasSuffix(g.URL.Path, rootHex) && g.Header.Get("Range") != "bytes=40000-99999" {
			t.Errorf("root GET Range = %q, want bytes=40000-99999", g.Header.Get("Range"))
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRemoveRefusesImageInUse(t *testing.T) {
	ref, _, c := pushedV1(t, 10_000)
	img := mustPull(t, c, ref)
	users := func(d string) []string {
		if d == img.Digest {
			return []string{"default", "dev"}
		}
		return nil
	}
	_, err := c.Remove(context.Background(), ref, users)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "default, dev") {
		t.Fatalf("Remove of an image in use: %v", err)
	}
	if _, err := c.Lookup(ref, "amd64"); err != nil {
		t.Fatalf("refused Remove dropped the image: %v", err)
	}
	gone, err := c.Remove(context.Background(), img.Digest[:19], func(string) []string { return nil })
	if err != nil || len(gone) != 1 || gone[0] != img.Digest {
		t.Fatalf("Remove by digest prefix = %v, %v", gone, err)
	}
	for _, f := range listFiles(t, c.Dir) {
		if !strings.HasPrefix(f, "refs.") { // refs.json (now empty) and its lock
			t.Errorf("cache after rm still has %s", f)
		}
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	host, _ := newRegistry(t)
	ref := host + "/machine/image:multi"
	amd, arm := fakeImage(t, "amd64", 30_000), fakeImage(t, "arm64", 30_000)
	r := testRemote()
	if _, err := r.Push(context.Background(), ref, amd, arm); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: t.TempDir()}
	for _, a := range []string{"amd64", "arm64"} {
		if _, err := pull(t, c, ref, a); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := c.Export(ref, &buf); err != nil {
		t.Fatal(err)
	}
	// go-containerregistry's own layout reader accepts it.
	dir := untar(t, buf.Bytes())
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 2 {
		t.Fatalf("layout index: %+v, %v", im, err)
	}

	other := &Cache{Dir: t.TempDir()}
	imgs, err := other.Import(context.Background(), bytes.NewReader(buf.Bytes()))
	if err != nil || len(imgs) != 2 {
		t.Fatalf("Import = %d images, %v", len(imgs), err)
	}
	for _, img := range imgs {
		src := map[string]string{"amd64": amd, "arm64": arm}[img.Arch]
		want, _ := Digest(src)
		if img.Digest != want || len(img.Refs) != 1 || img.Refs[0] != ref {
			t.Errorf("imported %+v, want digest %s named %s", img, want, ref)
		}
		sameFiles(t, src, img.Dir)
		if got, err := other.Lookup(ref, img.Arch); err != nil || got.Digest != want {
			t.Errorf("Lookup after import: %+v, %v", got, err)
		}
	}
}

func TestImportRefusesTamperedBlob(t *testing.T) {
	ref, _, c := pushedV1(t, 30_000)
	mustPull(t, c, ref)
	var buf bytes.Buffer
	if err := c.Export(ref, &buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	b[len(b)-2048] ^= 0xff // inside the last blob's content (before the tar trailer)
	other := &Cache{Dir: t.TempDir()}
	_, err := other.Import(context.Background(), bytes.NewReader(b))
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("Import of a tampered tarball: %v", err)
	}
	for _, f := range listFiles(t, other.Dir) {
		t.Errorf("failed import left %s", f)
	}
}

func untar(t *testing.T, b []byte) string {
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		body, _ := io.ReadAll(tr)
		os.WriteFile(p, body, 0o644)
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.9.9.9": true, "localhost:80": true, "[::1]:5000": true, "::1": true,
		"10.0.0.5:5000": false, "192.168.1.2": false, "registry.example:5000": false, "localhost.example": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
	reached := 0
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		reached++
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(""))}, nil
	})
	for _, c := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"http://10.0.0.5:5000/v2/", false, false},
		{"http://registry.example/v2/", false, false},
		{"http://10.0.0.5:5000/v2/", true, true},
		{"http://127.0.0.1:5000/v2/", false, true},
		{"https://registry.example/v2/", false, true},
	} {
		req, _ := http.NewRequest(http.MethodGet, c.url, nil)
		before := reached
		_, err := httpGuard{base: base, insecure: c.insecure}.RoundTrip(req)
		if c.ok != (err == nil) || c.ok != (reached > before) || !c.ok && !errors.Is(err, ErrPlainHTTP) {
			t.Errorf("%s (insecure=%v): err %v, reached base %v", c.url, c.insecure, err, reached > before)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDigestIsDeterministicAndFormatIsDocumented(t *testing.T) {
	src := fakeImage(t, "arm64", 1000)
	a, err := Digest(src)
	b, _ := Digest(src)
	if err != nil || a != b {
		t.Fatalf("Digest = %s, %s, %v", a, b, err)
	}
	li, _ := readLocal(src)
	var m struct {
		ArtifactType string                       `json:"artifactType"`
		Config       struct{ MediaType string }   `json:"config"`
		Layers       []struct{ MediaType string } `json:"layers"`
		Annotations  map[string]string            `json:"annotations"`
	}
	json.Unmarshal(li.manifest, &m)
	doc := string(mustRead(t, "FORMAT.md"))
	for _, s := range append([]string{m.ArtifactType, m.Config.MediaType}, AnnotationArch, AnnotationKernelRelease, AnnotationDockerd, AnnotationContainerd, AnnotationRunc, AnnotationAgent, AnnotationSuite) {
		if !strings.Contains(doc, s) {
			t.Errorf("FORMAT.md does not document %q", s)
		}
	}
	for _, l := range m.Layers {
		if !strings.Contains(doc, l.MediaType) {
			t.Errorf("FORMAT.md does not document layer type %q", l.MediaType)
		}
	}
	if m.Annotations[AnnotationArch] != "arm64" || m.Annotations[AnnotationKernelRelease] != "6.12.0-test-arm64" {
		t.Errorf("annotations %v", m.Annotations)
	}
}
