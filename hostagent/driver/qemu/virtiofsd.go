package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// fsDaemon is one running virtiofsd.
type fsDaemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// virtiofsdReady bounds how long a virtiofsd has to create its socket.
const virtiofsdReady = 10 * time.Second

// startVirtiofsd starts one virtiofsd per share when the host has one (locateVirtiofsd) and
// returns them with the socket of each share ("" for a share left on 9p). A share whose
// virtiofsd does not come up falls back to 9p, logged with what virtiofsd said: a slower
// share is better than a machine that does not start.
func (d *Driver) startVirtiofsd(ctx context.Context) ([]*fsDaemon, []string, error) {
	if len(d.cfg.Shares) == 0 {
		return nil, nil, nil
	}
	bin, why, err := locateVirtiofsd(d.host.OS, d.host.Accel, os.Geteuid(), os.Getenv, exec.LookPath, isFile, virtiofsdVersion)
	if err != nil {
		return nil, nil, err
	}
	if bin == "" {
		slog.Info("qemu: shares on 9p", "machine", d.cfg.Name, "why not virtiofs", why)
		return nil, nil, nil
	}
	var daemons []*fsDaemon
	sockets := make([]string, len(d.cfg.Shares))
	for i, s := range d.cfg.Shares {
		sock := fsSocketPath(d.cfg.Dir, i)
		fd, err := startOneVirtiofsd(ctx, bin, sock, s.HostPath, s.ReadOnly, filepath.Join(d.cfg.Dir, fmt.Sprintf("virtiofsd-%d.log", i)))
		if err != nil {
			slog.Warn("qemu: share on 9p: virtiofsd did not start", "machine", d.cfg.Name, "share", s.HostPath, "err", err)
			continue
		}
		daemons = append(daemons, fd)
		sockets[i] = sock
	}
	return daemons, sockets, nil
}

func startOneVirtiofsd(ctx context.Context, bin, sock, dir string, readOnly bool, logPath string) (*fsDaemon, error) {
	if len(sock) >= maxUnixPath {
		return nil, fmt.Errorf("socket path %q is too long for a unix socket", sock)
	}
	// Left by a virtiofsd that died with its host agent.
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fd := &fsDaemon{cmd: exec.Command(bin, virtiofsdArgs(sock, dir, readOnly)...), exited: make(chan struct{}), log: logPath}
	fd.cmd.Stdout, fd.cmd.Stderr = logf, logf
	fd.cmd.SysProcAttr = childAttr()
	if err := startChild(fd.cmd, fd.exited); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	var waitErr error
	go func() { waitErr = fd.cmd.Wait(); close(fd.exited) }()
	ctx, cancel := context.WithTimeout(ctx, virtiofsdReady)
	defer cancel()
	for {
		if _, err := os.Stat(sock); err == nil {
			return fd, nil
		}
		select {
		case <-fd.exited:
			return nil, fmt.Errorf("%s exited: %v: %s", bin, waitErr, logTail(logPath))
		case <-ctx.Done():
			fd.stop()
			return nil, fmt.Errorf("%s made no socket in %s: %s", bin, virtiofsdReady, logTail(logPath))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// virtiofsdVersion is what `path --version` prints, or "" when it does not run.
func virtiofsdVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "--version").Output()
	return string(out)
}

// stop ends the daemon (it ends by itself once QEMU closes its socket) and waits for it.
func (fd *fsDaemon) stop() {
	select {
	case <-fd.exited:
		return
	case <-time.After(2 * time.Second):
	}
	fd.cmd.Process.Kill()
	<-fd.exited
}

// logTail is the last lines of a log, for an error message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	if len(b) == 0 {
		return "(it printed nothing)"
	}
	return strings.ReplaceAll(string(b), "\n", "; ")
}
