package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/reaper"
	"github.com/machine-run/machine/internal/logrotate"
)

// Sockets of the engine inside the guest.
const (
	ContainerdSocket = "/run/containerd/containerd.sock"
	DockerSocket     = "/var/run/docker.sock"
)

// Stop timeouts: dockerd gives containers their stop grace (10 s by default) before it exits.
const (
	DockerStopTimeout     = 30 * time.Second
	ContainerdStopTimeout = 10 * time.Second
)

// Reporter receives engine milestones (state.State implements it).
type Reporter interface {
	Phase(name, detail string) api.Phase
	Ready()
	UpdateVersions(func(*api.Versions))
}

// Engine runs containerd and dockerd.
type Engine struct {
	Reaper *reaper.Reaper
	Log    *slog.Logger
	Report Reporter
	// LogDir receives containerd.log and dockerd.log; empty discards the daemons' output.
	LogDir string
	// HostGatewayIP, when set, is what `--add-host NAME:host-gateway` maps to.
	HostGatewayIP string
	// MTU, when set, is the MTU of the engine's bridge networks, the default one and every
	// one created without its own: the forwarding NIC's, so that a connection forwarded
	// into a container carries the link's large frames end to end (a container's MSS,
	// which its interface's MTU sets, bounds every segment sent to it). Traffic that
	// leaves through the primary NIC keeps its smaller MSS, which the far end advertises.
	MTU int

	containerd, dockerd *Supervised
	wg                  sync.WaitGroup

	logsMu sync.Mutex
	logs   map[string]*logrotate.Writer
}

// dockerdArgs is dockerd's argv.
func (e *Engine) dockerdArgs() []string {
	args := []string{"dockerd", "--containerd=" + ContainerdSocket, "-H", "unix://" + DockerSocket}
	if e.HostGatewayIP != "" {
		args = append(args, "--host-gateway-ip="+e.HostGatewayIP)
	}
	if e.MTU != 0 {
		args = append(args, fmt.Sprintf("--mtu=%d", e.MTU),
			fmt.Sprintf("--default-network-opt=bridge=com.docker.network.driver.mtu=%d", e.MTU))
	}
	return args
}

// Start launches both daemons in parallel (dockerd waits for containerd's socket itself) and
// returns at once; milestones go to Report.
func (e *Engine) Start(ctx context.Context) {
	var cdOnce, dOnce sync.Once
	e.containerd = &Supervised{
		Name:    "containerd",
		Command: func() *exec.Cmd { return e.command("containerd", "containerd") },
		Ready:   func(ctx context.Context) error { return WaitUnixSocket(ctx, ContainerdSocket) },
		OnReady: func() { cdOnce.Do(func() { e.Report.Phase(api.PhaseContainerd, "") }) },
		Reaper:  e.Reaper, Log: e.Log,
	}
	e.dockerd = &Supervised{
		Name: "dockerd",
		Command: func() *exec.Cmd {
			return e.command("dockerd", e.dockerdArgs()...)
		},
		Ready: func(ctx context.Context) error { return WaitDockerPing(ctx, DockerSocket) },
		OnReady: func() {
			dOnce.Do(func() {
				e.Report.Phase(api.PhaseDocker, "")
				e.Report.Ready()
				go e.fetchVersions(ctx)
			})
		},
		Reaper: e.Reaper, Log: e.Log,
	}
	for _, s := range []*Supervised{e.containerd, e.dockerd} {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); s.Run(ctx) }()
	}
}

// Stop stops dockerd (letting it stop containers), then containerd.
func (e *Engine) Stop() {
	if e.dockerd == nil {
		return
	}
	e.dockerd.Stop(DockerStopTimeout)
	e.containerd.Stop(ContainerdStopTimeout)
	e.wg.Wait()
	// The logs are on the data disk, which shutdown unmounts next.
	e.logsMu.Lock()
	for _, w := range e.logs {
		w.Close()
	}
	e.logsMu.Unlock()
}

func (e *Engine) command(name string, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	if e.LogDir != "" {
		// The reaper takes only files: the daemon writes into a pipe (closed here by
		// Supervised once the child has its copy) that a goroutine drains into the rotated
		// log until the daemon and whatever inherited the pipe have exited.
		pr, pw, err := os.Pipe()
		if err != nil {
			e.Log.Warn("engine: log pipe", "daemon", name, "err", err)
			return cmd
		}
		w := e.logWriter(name)
		go func() {
			defer pr.Close()
			if _, err := io.Copy(w, pr); err != nil {
				e.Log.Warn("engine: log", "daemon", name, "err", err)
				io.Copy(io.Discard, pr) // never block the daemon on its output
			}
		}()
		cmd.Stdout, cmd.Stderr = pw, pw
	}
	return cmd
}

// Engine logs live on the data disk across boots: each daemon's is rotated by size, with
// a few generations kept, so a chatty daemon cannot fill the disk.
const (
	engineLogMax  = 8 << 20
	engineLogKeep = 3
)

// logWriter is the daemon's log, one per daemon for the engine's lifetime (restarts of the
// daemon append to it). The daemon writes into a pipe the agent drains into the file.
func (e *Engine) logWriter(name string) *logrotate.Writer {
	e.logsMu.Lock()
	defer e.logsMu.Unlock()
	if e.logs == nil {
		e.logs = map[string]*logrotate.Writer{}
	}
	w := e.logs[name]
	if w == nil {
		w = &logrotate.Writer{Path: filepath.Join(e.LogDir, name+".log"), MaxBytes: engineLogMax, Keep: engineLogKeep, Perm: 0o640}
		e.logs[name] = w
	}
	return w
}

// WaitUnixSocket returns once a connection to path succeeds, probing with backoff.
func WaitUnixSocket(ctx context.Context, path string) error {
	return poll(ctx, func() error {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", path)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// WaitDockerPing returns once GET /_ping on the unix socket answers 200.
func WaitDockerPing(ctx context.Context, path string) error {
	client := unixClient(path)
	defer client.CloseIdleConnections()
	return poll(ctx, func() error {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://docker/_ping", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("docker /_ping: %s", resp.Status)
		}
		return nil
	})
}

func unixClient(path string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}},
	}
}

// poll retries probe every 20 ms, backing off to every 50 ms, until it succeeds or ctx ends.
// It runs only while a daemon starts; nothing polls once it is ready. Each failed probe is a
// refused connect, and the machine is ready the moment dockerd answers: a backoff to 500 ms
// made Docker ready 0.25 s late on average.
func poll(ctx context.Context, probe func() error) error {
	delay := 20 * time.Millisecond
	for {
		err := probe()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last probe: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*3/2, 50*time.Millisecond)
	}
}

// fetchVersions asks dockerd for its own and its components' versions.
func (e *Engine) fetchVersions(ctx context.Context) {
	v, err := DockerVersions(ctx, DockerSocket)
	if err != nil {
		e.Log.Warn("engine: version", "err", err)
		return
	}
	e.Report.UpdateVersions(func(dst *api.Versions) {
		dst.Docker, dst.Containerd, dst.Runc = v.Docker, v.Containerd, v.Runc
	})
}

// DockerVersions reads GET /version from the engine at socket.
func DockerVersions(ctx context.Context, socket string) (api.Versions, error) {
	client := unixClient(socket)
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://docker/version", nil)
	resp, err := client.Do(req)
	if err != nil {
		return api.Versions{}, fmt.Errorf("docker /version: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Version    string
		Components []struct{ Name, Version string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return api.Versions{}, fmt.Errorf("docker /version: %w", err)
	}
	v := api.Versions{Docker: body.Version}
	for _, c := range body.Components {
		switch c.Name {
		case "containerd":
			v.Containerd = c.Version
		case "runc":
			v.Runc = c.Version
		}
	}
	return v, nil
}
