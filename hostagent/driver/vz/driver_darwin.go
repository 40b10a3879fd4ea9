//go:build darwin && cgo

package vz

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/Code-Hex/vz/v3"

	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/driver/vz/vsockconn"
)

// Driver runs one VM with Virtualization.framework.
type Driver struct {
	cfg  driver.Config
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	vm     *vz.VirtualMachine
	socket *vz.VirtioSocketDevice
	files  []*os.File // serial console handles, the forwarding NIC's VM end; vz does not own them
	fwdNIC net.Conn   // host end of the forwarding NIC (ForwardNIC)

	onHost func(service uint32) func(net.Conn) // host services (ServeHost), or nil

	finishOnce sync.Once
	done       chan struct{} // closed when the VM has stopped or failed to start
	waitErr    error
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.StateReporter = (*Driver)(nil)
	_ driver.HostServer    = (*Driver)(nil)
	_ driver.ForwardNIC    = (*Driver)(nil)
)

// ForwardNIC implements driver.ForwardNIC.
func (d *Driver) ForwardNIC() net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fwdNIC
}

// ServeHost implements driver.HostServer: once the VM runs, the host services listen on
// their vsock ports of the VM's socket device. Call it before Start.
func (d *Driver) ServeHost(h func(service uint32) func(net.Conn)) { d.onHost = h }

// serveHost starts the host services on the VM's socket device; they end with the VM.
func (d *Driver) serveHost(sock *vz.VirtioSocketDevice) {
	if d.onHost == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-d.done; cancel() }()
	listen := func(port uint32) (net.Listener, error) {
		l, err := sock.Listen(port)
		if err != nil {
			return nil, err
		}
		return wrapListener{l}, nil
	}
	if err := driver.ServeHostPorts(ctx, listen, d.onHost, d.log); err != nil {
		// The VM still runs; the guest falls back (DNS to the NAT's resolver) and says so.
		d.log.Error("host services unavailable", "err", err)
	}
}

// wrapListener gives accepted vsock connections the CloseWrite the stream proxies use.
type wrapListener struct{ net.Listener }

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc, err := vsockconn.Wrap(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return wc, nil
}

// ReportStates makes fn receive every state change after Options.OnState. Call it before
// Start.
func (d *Driver) ReportStates(fn func(state string)) {
	prev := d.opts.OnState
	d.opts.OnState = func(s State) {
		if prev != nil {
			prev(s)
		}
		fn(string(s))
	}
}

// New checks that cfg can boot on this Mac and returns a driver for it; Start boots it.
func New(cfg driver.Config, opts Options) (*Driver, error) {
	if err := CheckHost(); err != nil {
		return nil, fmt.Errorf("machine %q: %w", cfg.Name, err)
	}
	if cfg.Arch != runtime.GOARCH {
		return nil, fmt.Errorf("machine %q: guest architecture %s cannot run on this %s Mac with "+
			"Virtualization.framework (use Rosetta for amd64 binaries in an arm64 guest)",
			cfg.Name, cfg.Arch, runtime.GOARCH)
	}
	for what, path := range map[string]string{
		"kernel": cfg.Kernel, "initrd": cfg.Initrd, "root image": cfg.RootImage, "data disk": cfg.DataDisk,
	} {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("machine %q: %s: %w", cfg.Name, what, err)
		}
	}
	if err := checkKernel(cfg.Kernel, cfg.Arch); err != nil {
		return nil, fmt.Errorf("machine %q: %w", cfg.Name, err)
	}
	if cfg.Rosetta != nil {
		if err := rosettaAvailable(); err != nil {
			return nil, fmt.Errorf("machine %q: %w", cfg.Name, err)
		}
	}
	// Checked now so a bad config fails before the host agent reports a start; Start plans
	// again, so the guest gets the host clock of the boot itself.
	if _, err := NewPlan(cfg, opts); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Driver{cfg: cfg, opts: opts, log: log.With("machine", cfg.Name, "driver", "vz"),
		done: make(chan struct{})}, nil
}

// Start builds and validates the VM configuration and boots the VM. It returns once the
// framework runs the VM, not when the guest is ready.
func (d *Driver) Start(ctx context.Context) error {
	vm, err := d.create()
	if err != nil {
		return err
	}

	quit := make(chan struct{})
	go d.watch(vm.StateChangedNotify(), quit)

	started := make(chan error, 1)
	go func() { started <- vm.Start() }()
	select {
	case err := <-started:
		if err != nil {
			close(quit)
			err = fmt.Errorf("machine %q: start VM: %w", d.cfg.Name, err)
			d.finish(err)
			return err
		}
		d.log.Info("vm started")
		_, sock, _ := d.started()
		d.serveHost(sock)
		return nil
	case <-ctx.Done():
		// The framework cannot cancel a start: stop the VM once it has started.
		go func() {
			if err := <-started; err != nil {
				close(quit)
				d.finish(fmt.Errorf("machine %q: start VM: %w", d.cfg.Name, err))
				return
			}
			if err := vm.Stop(); err != nil {
				d.log.Warn("stop after cancelled start", "err", err)
			}
		}()
		return fmt.Errorf("machine %q: start VM: %w", d.cfg.Name, ctx.Err())
	}
}

// create builds the VM; the lock is released before booting because finish takes it.
func (d *Driver) create() (*vz.VirtualMachine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vm != nil {
		return nil, fmt.Errorf("machine %q: already started", d.cfg.Name)
	}
	plan, err := NewPlan(d.cfg, d.opts)
	if err != nil {
		return nil, err
	}
	conf, files, nic, err := buildConfig(plan)
	if err != nil {
		closeFiles(files)
		return nil, fmt.Errorf("machine %q: %w", d.cfg.Name, err)
	}
	fail := func(err error) (*vz.VirtualMachine, error) {
		closeFiles(files)
		if nic != nil {
			nic.Close()
		}
		return nil, err
	}
	vm, err := vz.NewVirtualMachine(conf)
	if err != nil {
		return fail(fmt.Errorf("machine %q: create VM: %w", d.cfg.Name, err))
	}
	socks := vm.SocketDevices()
	if len(socks) == 0 {
		return fail(fmt.Errorf("machine %q: VM has no virtio socket device", d.cfg.Name))
	}
	d.vm, d.socket, d.files, d.fwdNIC = vm, socks[0], files, nic
	return vm, nil
}

// watch turns the framework's state notifications into Options.OnState calls and ends Wait
// when the VM stops. It exits on a final state or when quit closes (the VM never started).
func (d *Driver) watch(states <-chan vz.VirtualMachineState, quit <-chan struct{}) {
	for {
		select {
		case <-quit:
			return
		case s := <-states:
			st := stateFromVZ(s)
			d.log.Debug("vm state", "state", st)
			if d.opts.OnState != nil {
				d.opts.OnState(st)
			}
			switch st {
			case StateStopped:
				d.finish(nil)
				return
			case StateError:
				d.finish(fmt.Errorf("machine %q: %w", d.cfg.Name, ErrVMError))
				return
			}
		}
	}
}

func (d *Driver) finish(err error) {
	d.finishOnce.Do(func() {
		d.waitErr = err
		d.mu.Lock()
		files := d.files
		d.files = nil
		d.mu.Unlock()
		closeFiles(files)
		close(d.done)
	})
}

func (d *Driver) started() (*vz.VirtualMachine, *vz.VirtioSocketDevice, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vm == nil {
		return nil, nil, fmt.Errorf("machine %q: not started", d.cfg.Name)
	}
	return d.vm, d.socket, nil
}

// DialGuest connects to vsock port service in the guest, retrying with backoff while the
// guest agent is not listening yet, until ctx ends or the VM stops. The connection's
// CloseWrite shuts down its write half.
func (d *Driver) DialGuest(ctx context.Context, service uint32) (net.Conn, error) {
	_, sock, err := d.started()
	if err != nil {
		return nil, err
	}
	dl := &dialer{
		connect: func() (net.Conn, error) {
			c, err := sock.Connect(service)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		stopped:        d.done,
		minBackoff:     20 * time.Millisecond,
		maxBackoff:     500 * time.Millisecond,
		attemptTimeout: 5 * time.Second,
	}
	conn, err := dl.dial(ctx, service)
	if err != nil {
		return nil, fmt.Errorf("machine %q: %w", d.cfg.Name, err)
	}
	wc, err := vsockconn.Wrap(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("machine %q: vsock port %d: %w", d.cfg.Name, service, err)
	}
	return wc, nil
}

// RequestStop asks the guest to power off (a power-button event). The guest agent's
// shutdown service is the reliable clean path; this is the hypervisor-level request.
func (d *Driver) RequestStop(ctx context.Context) error {
	vm, _, err := d.started()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !vm.CanRequestStop() {
		return fmt.Errorf("machine %q: cannot request a stop in state %s", d.cfg.Name, stateFromVZ(vm.State()))
	}
	ok, err := vm.RequestStop()
	if err != nil {
		return fmt.Errorf("machine %q: request stop: %w", d.cfg.Name, err)
	}
	if !ok {
		return fmt.Errorf("machine %q: request stop: refused by the framework", d.cfg.Name)
	}
	return nil
}

// Kill stops the VM at once; Wait then returns nil.
func (d *Driver) Kill() error {
	vm, _, err := d.started()
	if err != nil {
		return err
	}
	select {
	case <-d.done:
		return nil
	default:
	}
	if err := vm.Stop(); err != nil {
		return fmt.Errorf("machine %q: kill: %w", d.cfg.Name, err)
	}
	return nil
}

// Wait blocks until the VM has stopped: nil after a guest power-off or Kill, ErrVMError when
// the framework reports an error state, or the start error.
func (d *Driver) Wait() error {
	if _, _, err := d.started(); err != nil {
		return err
	}
	<-d.done
	return d.waitErr
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
