package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api/mux"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/netstack"
)

// Driver runs one QEMU process.
type Driver struct {
	cfg    driver.Config
	host   Host
	binary string
	why    string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	// fwdNIC is the host end of the forwarding NIC of the VM Start started (nil: none).
	fwdNIC net.Conn

	link     *mux.Link
	linkDone chan struct{}
	onLink   func(driver.ChannelState)
	onHost   func(service uint32) func(net.Conn)
}

// New prepares a QEMU driver for cfg on this host. It finds QEMU and picks the accelerator,
// but starts nothing.
func New(cfg driver.Config) (*Driver, error) {
	bin, err := Binary(runtime.GOOS, cfg.Arch)
	if err != nil {
		return nil, err
	}
	path, err := locateQEMU(runtime.GOOS, bin, os.Getenv, exec.LookPath, isFile)
	if err != nil {
		return nil, err
	}
	accel, why := DetectAccel(runtime.GOOS, runtime.GOARCH, cfg.Arch, hostProbe())
	host := Host{
		OS:          runtime.GOOS,
		Accel:       accel,
		AgentSocket: agentSocketPath(runtime.GOOS, cfg.Dir),
		QMPSocket:   qmpSocketPath(cfg.Dir),
		TokenFile:   filepath.Join(cfg.Dir, "channel.token"),
	}
	for _, s := range []string{host.AgentSocket, host.QMPSocket} {
		if s != "" && len(s) >= maxUnixPath {
			return nil, fmt.Errorf("qemu: socket path %q is too long for a unix socket (%d bytes, max %d): set MACHINE_HOME to a shorter folder", s, len(s), maxUnixPath-1)
		}
	}
	return &Driver{cfg: cfg, host: host, binary: path, why: why, exited: make(chan struct{})}, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// maxUnixPath is the size of sun_path on Linux (macOS allows only 104).
const maxUnixPath = 104

// Accel reports the accelerator in use and why it was chosen.
func (d *Driver) Accel() (accel, why string) { return d.host.Accel, d.why }

// Start runs QEMU and connects the host end of the guest channel.
func (d *Driver) Start(ctx context.Context) error {
	// Before anything else: a QEMU left by a killed host agent still holds the data disk.
	if o, err := EndOrphan(ctx, d.cfg.Dir, 0); err != nil {
		return err
	} else if o != nil {
		slog.Warn("qemu: killed the QEMU left running by a host agent that was killed", "machine", d.cfg.Name, "pid", o.Pid)
	}
	vsock := d.useVsock()
	if vsock != nil {
		defer vsock.Close() // QEMU holds its own copy, and with it the CID
	}
	if err := d.host.prepareChannel(); err != nil {
		return err
	}
	fsds, sockets, err := d.startVirtiofsd(ctx)
	if err != nil {
		return err
	}
	stopFS := func() {
		for _, fd := range fsds {
			fd.stop()
		}
	}
	d.host.FSSockets = sockets
	if d.cfg.Arch == "amd64" && d.host.Accel == AccelTCG {
		// Only where it pays: under KVM, HVF or WHPX the bzImage unpacks itself in tens of
		// milliseconds.
		if k, err := pvhKernel(d.cfg.Dir, d.cfg.Kernel); err != nil {
			slog.Warn("qemu: booting the compressed kernel, the PVH one is unavailable", "machine", d.cfg.Name, "err", err)
		} else {
			d.host.Kernel = k
		}
	}
	var extra []*os.File // QEMU's descriptors 3, 4, ...
	if vsock != nil {
		extra = append(extra, vsock.File()) // Host.VsockFD
	}
	nicVM := d.attachForwardNIC(len(extra))
	if nicVM != nil {
		defer nicVM.Close() // QEMU holds its own copy
		extra = append(extra, nicVM)
	}
	args, err := Args(d.cfg, d.host)
	if err != nil {
		stopFS()
		return err
	}
	for _, s := range []string{d.host.AgentSocket, d.host.QMPSocket} {
		if s == "" {
			continue
		}
		// Left by a QEMU that died with its host agent or was ended above; QEMU refuses to
		// bind over it.
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			stopFS()
			return fmt.Errorf("qemu: remove stale socket: %w", err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(d.cfg.Dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		stopFS()
		return fmt.Errorf("qemu: %w", err)
	}
	defer logf.Close()
	d.cmd = exec.Command(d.binary, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = childAttr()
	d.cmd.ExtraFiles = extra
	if err := startChild(d.cmd, d.exited); err != nil {
		stopFS()
		return fmt.Errorf("qemu: start %s: %w", d.binary, err)
	}
	pid := d.cmd.Process.Pid
	recErr := writeRecord(d.cfg.Dir, pid, d.host)
	go func() {
		err := d.cmd.Wait()
		stopFS() // each virtiofsd ends once QEMU has closed its socket
		removeRecord(d.cfg.Dir, pid)
		if err != nil {
			err = fmt.Errorf("qemu exited: %w (see %s)", err, filepath.Join(d.cfg.Dir, "qemu.log"))
		}
		d.waitErr = err
		close(d.exited)
	}()
	if recErr != nil {
		// Without the record a QEMU orphaned on macOS could not be found again.
		d.Kill()
		return recErr
	}
	if d.host.VsockCID != 0 {
		return nil
	}
	conn, err := d.connectAgentSocket(ctx)
	if err != nil {
		d.Kill()
		return err
	}
	d.startLink(conn)
	return nil
}

// useVsock puts the guest channel on vhost-vsock where chooseVsock allows it (Linux with
// KVM) and returns the device holding the claimed CID; otherwise the serial channel stays.
func (d *Driver) useVsock() vsockDevice {
	d.host.VsockCID, d.host.VsockFD = 0, 0
	if d.host.OS != "linux" {
		return nil
	}
	cid, dev, why := chooseVsock(d.host.Accel, openVhostVsock, d.cfg.Dir)
	if dev == nil {
		slog.Info("qemu: guest channel on the serial port", "machine", d.cfg.Name, "why not vsock", why)
		return nil
	}
	slog.Info("qemu: guest channel on "+why, "machine", d.cfg.Name)
	d.host.VsockCID, d.host.VsockFD = cid, 3
	return dev
}

// attachForwardNIC makes the forwarding NIC's socket pair, for QEMU descriptor 3+n, and
// returns the VM's end; nil (no NIC, forwards take the other paths) where the host has no
// datagram socket pairs (Windows) or the pair cannot be made.
func (d *Driver) attachForwardNIC(n int) *os.File {
	if d.fwdNIC != nil {
		d.fwdNIC.Close() // an earlier VM's
	}
	d.fwdNIC, d.host.ForwardNICFD = nil, 0
	host, vm, err := netstack.Pair()
	if err != nil {
		slog.Info("qemu: no forwarding NIC; published ports use the user network and the channel", "machine", d.cfg.Name, "err", err)
		return nil
	}
	d.fwdNIC, d.host.ForwardNICFD = host, 3+n
	return vm
}

// ForwardNIC implements driver.ForwardNIC.
func (d *Driver) ForwardNIC() net.Conn { return d.fwdNIC }

// startLink keeps the guest channel over conn, and over a fresh connection to QEMU's chardev
// (with the token again) whenever it breaks, until QEMU exits.
func (d *Driver) startLink(first net.Conn) {
	var once sync.Once
	d.link = &mux.Link{
		Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			var conn net.Conn
			once.Do(func() { conn = first })
			if conn != nil {
				return conn, nil
			}
			return dialAgent(ctx, d.host, d.exited)
		},
		Host: d.onHost,
		OnChange: func(s mux.LinkState) {
			if d.onLink != nil {
				d.onLink(driver.ChannelState{Up: s.Up, Err: s.Err})
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.linkDone = make(chan struct{})
	go func() { <-d.exited; cancel() }()
	go func() { defer close(d.linkDone); d.link.Run(ctx) }()
}

// ServeHost implements driver.HostServer for the serial channel; call it before Start.
func (d *Driver) ServeHost(h func(service uint32) func(net.Conn)) { d.onHost = h }

// WatchChannel implements driver.ChannelWatcher; call it before Start.
func (d *Driver) WatchChannel(fn func(driver.ChannelState)) { d.onLink = fn }

// CutChannel implements driver.ChannelWatcher.
func (d *Driver) CutChannel() error {
	if d.link == nil {
		return fmt.Errorf("qemu: %w: the channel is vsock or the VM is not running", driver.ErrUnsupported)
	}
	return d.link.Cut()
}

// connectAgentSocket dials QEMU's agent chardev (unix socket or loopback TCP) and presents
// the channel token.
func (d *Driver) connectAgentSocket(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := dialAgent(ctx, d.host, d.exited)
	if err != nil {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("%w: %v", err, d.waitErr)
		default:
		}
		return nil, err
	}
	return conn, nil
}

// DialGuest opens a stream to a guest service.
func (d *Driver) DialGuest(ctx context.Context, service uint32) (net.Conn, error) {
	if d.host.VsockCID != 0 {
		return dialVsock(ctx, d.host.VsockCID, service, d.exited)
	}
	if d.link == nil {
		return nil, errors.New("qemu: the VM is not running")
	}
	return d.link.DialGuest(ctx, service)
}

// RequestStop asks QEMU to press the virtual power button (ACPI).
func (d *Driver) RequestStop(ctx context.Context) error {
	return qmpCommand(ctx, "unix", d.host.QMPSocket, "system_powerdown")
}

// Kill ends QEMU at once.
func (d *Driver) Kill() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	if err := d.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("qemu: kill: %w", err)
	}
	<-d.exited
	return nil
}

// Wait blocks until QEMU exits.
func (d *Driver) Wait() error {
	<-d.exited
	if d.linkDone != nil {
		<-d.linkDone
	}
	return d.waitErr
}

// Pid is QEMU's process ID, for diagnostics.
func (d *Driver) Pid() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}
