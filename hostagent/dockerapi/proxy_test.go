package dockerapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// listenUnix listens on a unix socket in a temporary folder: real sockets, with CloseWrite.
func listenUnix(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// startProxy serves p (its Dial set to the engine's socket) and returns the proxy's address.
func startProxy(t *testing.T, p *Proxy, engine net.Listener) string {
	t.Helper()
	p.Dial = func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", engine.Addr().String())
	}
	ln := listenUnix(t, "proxy.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// serveEngine runs h as the engine and counts the connections it accepts.
func serveEngine(t *testing.T, h http.Handler) (net.Listener, *atomic.Int32) {
	t.Helper()
	ln := listenUnix(t, "engine.sock")
	var conns atomic.Int32
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln, &conns
}

func unixClient(addr string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		},
		MaxIdleConnsPerHost: 1,
	}}
}

func TestProxyKeepAliveAndChunked(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })
	mux.HandleFunc("/build", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for i := range 3 { // flushed pieces: a chunked response
			fmt.Fprintf(w, "step %d of %d bytes\n", i, len(body))
			w.(http.Flusher).Flush()
		}
	})
	engine, conns := serveEngine(t, mux)
	addr := startProxy(t, &Proxy{Binds: &Binds{Machine: "m", GOOS: "linux"}}, engine)
	c := unixClient(addr)
	for i := range 5 {
		resp, err := c.Get("http://docker/_ping")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "OK" {
			t.Fatalf("ping %d: %q", i, b)
		}
		pr, pw := io.Pipe() // unknown length: the client sends it chunked
		go func() {
			for range 4 {
				pw.Write([]byte(strings.Repeat("x", 1000)))
			}
			pw.Close()
		}()
		resp, err = c.Post("http://docker/build", "application/x-tar", pr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("response transfer encoding %v, want chunked", resp.TransferEncoding)
		}
		if want := "step 0 of 4000 bytes\nstep 1 of 4000 bytes\nstep 2 of 4000 bytes\n"; string(b) != want {
			t.Fatalf("build %d: %q, want %q", i, b, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("engine saw %d connections for 10 requests on one kept-alive client connection, want 1", n)
	}
}

// TestProxyPassesBytesUntouched checks that requests and responses the proxy does not
// inspect reach the other side byte for byte, chunk extensions and trailers included.
func TestProxyPassesBytesUntouched(t *testing.T) {
	req1 := "POST /v1.44/images/load?quiet=1 HTTP/1.1\r\nhost: docker\r\nX-odd-CASE:  kept \r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
	req2 := "GET /info HTTP/1.1\r\nHost: docker\r\n\r\n"
	req := req1 + req2
	resp1 := "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"
	resp2 := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
	engine := listenUnix(t, "engine.sock")
	got := make(chan string, 1)
	go func() {
		c, err := engine.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// Requests reach the engine one at a time: the next after the answer to the last.
		b := make([]byte, len(req1))
		io.ReadFull(c, b)
		io.WriteString(c, resp1)
		b2 := make([]byte, len(req2))
		io.ReadFull(c, b2)
		io.WriteString(c, resp2)
		got <- string(b) + string(b2)
		io.Copy(io.Discard, c)
	}()
	addr := startProxy(t, &Proxy{Binds: &Binds{GOOS: "linux"}}, engine)
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, req)
	if g := <-got; g != req {
		t.Errorf("engine got\n%q\nwant\n%q", g, req)
	}
	b := make([]byte, len(resp1+resp2))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != resp1+resp2 {
		t.Errorf("client got %q, %v; want %q", b, err, resp1+resp2)
	}
}

// TestProxyUpgradeHalfClose is `docker run -i`: after 101 the connection is a raw stream,
// and the client's half-close (end of stdin) reaches the engine while output still flows.
func TestProxyUpgradeHalfClose(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.41/containers/c1/attach", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		rw.Flush()
		in, _ := io.ReadAll(rw) // until the client's half-close
		conn.Write([]byte("got:" + string(in)))
		conn.(*net.UnixConn).CloseWrite()
		io.Copy(io.Discard, conn)
	})
	engine, _ := serveEngine(t, mux)
	addr := startProxy(t, &Proxy{Binds: &Binds{GOOS: "linux"}}, engine)
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1.41/containers/c1/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("attach answer %v, %v; want 101", resp, err)
	}
	io.WriteString(c, "stdin line\n")
	c.(*net.UnixConn).CloseWrite()
	out, err := io.ReadAll(br)
	if err != nil || string(out) != "got:stdin line\n" {
		t.Fatalf("output %q, %v: the half-close did not reach the engine, or output was lost", out, err)
	}
}

func TestProxyRefusesUnsharedBind(t *testing.T) {
	var creates atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.47/containers/create", func(w http.ResponseWriter, r *http.Request) {
		creates.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		w.Write(body) // echo: the test sees what the engine got
	})
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })
	engine, _ := serveEngine(t, mux)
	share := t.TempDir()
	addr := startProxy(t, &Proxy{Binds: &Binds{Machine: "dev", GOOS: "linux", Shares: []Share{{HostPath: share, GuestPath: share}}}}, engine)
	c := unixClient(addr)

	resp, err := c.Post("http://docker/v1.47/containers/create?name=x", "application/json", strings.NewReader(string(createBody([]string{"/srv/nowhere:/x"}))))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct{ Message string }
	json.NewDecoder(resp.Body).Decode(&msg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg.Message, "/srv/nowhere") || !strings.Contains(msg.Message, "machine set dev --share /srv/nowhere") {
		t.Errorf("refusal %d %q; want 400 naming the path and the set command", resp.StatusCode, msg.Message)
	}
	if creates.Load() != 0 {
		t.Error("the refused create reached the engine")
	}
	// The connection goes on; a shared bind passes, with a chunked body too.
	pr, pw := io.Pipe()
	go func() { pw.Write(createBody([]string{share + ":/x:ro"})); pw.Close() }()
	resp, err = c.Post("http://docker/v1.47/containers/create", "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), share+":/x:ro") {
		t.Errorf("shared create: %d %s", resp.StatusCode, b)
	}
	resp, err = c.Get("http://docker/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestProxyStartWaitsForPorts(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.41/containers/web/start", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/v1.41/containers/quiet/start", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/containers/web/json", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"Id":"0123abcd","NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}],"53/udp":[{"HostIp":"127.0.0.1","HostPort":"5353"}],"443/tcp":null}}}`)
	})
	mux.HandleFunc("/containers/quiet/json", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"Id":"feed","NetworkSettings":{"Ports":{}}}`)
	})
	engine, _ := serveEngine(t, mux)
	called := make(chan []PublishedPort, 1)
	release := make(chan struct{})
	var mu sync.Mutex
	var ids []string
	p := &Proxy{WaitPorts: func(ctx context.Context, id string, ports []PublishedPort) error {
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		called <- ports
		<-release
		return nil
	}}
	addr := startProxy(t, p, engine)
	c := unixClient(addr)
	answered := make(chan int, 1)
	go func() {
		resp, err := c.Post("http://docker/v1.41/containers/web/start", "", nil)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	ports := <-called
	select {
	case code := <-answered:
		t.Fatalf("start answered (%d) before the host had its ports", code)
	default:
	}
	if len(ports) != 3 {
		t.Errorf("ports %+v; want 8080/tcp twice (IPv4, IPv6) and 5353/udp", ports)
	}
	close(release)
	if code := <-answered; code != http.StatusNoContent {
		t.Fatalf("start answered %d, want 204", code)
	}
	resp, err := c.Post("http://docker/v1.41/containers/quiet/start", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 1 || ids[0] != "0123abcd" {
		t.Errorf("WaitPorts called for %q; want once, for the full ID of the container that publishes ports", ids)
	}
}

// TestProxyHTTP10 is `printf 'GET /_ping HTTP/1.0\r\n\r\n' | nc -U docker.sock`: the answer
// ends the connection, as HTTP/1.0 without keep-alive means.
func TestProxyHTTP10(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })
	engine, _ := serveEngine(t, mux)
	addr := startProxy(t, &Proxy{}, engine)
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /_ping HTTP/1.0\r\n\r\n")
	b, err := io.ReadAll(c) // returns only when the proxy closes the connection
	if err != nil || !strings.HasSuffix(string(b), "\r\n\r\nOK") {
		t.Fatalf("HTTP/1.0 answer %q, %v", b, err)
	}
}

// TestProxyHeadPing is how the docker CLI opens every session: HEAD /_ping, whose answer
// has a Content-Length but no body, then a request on the same connection.
func TestProxyHeadPing(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.Header().Set("Api-Version", "1.47")
		if r.Method != "HEAD" {
			io.WriteString(w, "OK")
		}
	})
	engine, conns := serveEngine(t, mux)
	c := unixClient(startProxy(t, &Proxy{}, engine))
	for range 3 {
		resp, err := c.Head("http://docker/_ping")
		if err != nil || resp.Header.Get("Api-Version") != "1.47" {
			t.Fatalf("HEAD /_ping: %v, %v", resp, err)
		}
		resp.Body.Close()
		resp, err = c.Get("http://docker/_ping")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "OK" {
			t.Fatalf("GET after HEAD: %q", b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("engine saw %d connections, want 1", n)
	}
}
