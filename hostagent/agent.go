// Package hostagent is the per-machine daemon on the host. `machine start` spawns it detached;
// it owns the VM through a driver.Driver, follows the guest agent's boot, serves the Docker
// API socket and a private control API (status, stop, events, guest streams) on unix sockets,
// and writes typed events as JSON lines. When it dies, the VM dies with it (a QEMU on macOS,
// which has no parent-death signal, at the next start or stop: see driver/qemu/orphan.go).
package hostagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/hostsvc"
	"github.com/machine-run/machine/hostagent/shares"
	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/internal/atomicfile"
	"github.com/machine-run/machine/portforward"
	"github.com/machine-run/machine/vmimage"
)

// States reported by Status.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateStopping = "stopping"
	StateStopped  = "stopped"
)

// Options configure Run.
type Options struct {
	Machine   *store.Machine
	Config    *store.Config
	NewDriver func(driver.Config) (driver.Driver, error)
	Logger    *slog.Logger

	// GuestStopTimeout bounds the clean guest shutdown (containers get their stop grace
	// inside it); ACPITimeout bounds the power-button fallback. Zero means the default.
	GuestStopTimeout time.Duration
	ACPITimeout      time.Duration
	// KillTimeout bounds the wait for the VM to exit after Kill (and for Kill itself).
	// Zero means the default.
	KillTimeout time.Duration

	// FaultInjection serves the control API's fault endpoints (cut the guest channel), for
	// the fault suite only.
	FaultInjection bool
}

// Agent is one running host agent.
type Agent struct {
	o      Options
	log    *slog.Logger
	events *eventLog
	drv    driver.Driver
	guest  *guestClient
	ports  *portforward.Forwarder
	net    *netPath // nil: every forward goes through the guest channel
	idle   *idler   // nil: auto-pause is off
	// portSync fires after each port sync (the Docker API's start waits on it).
	portSync syncSignal

	stopReq chan bool     // true: force
	forced  chan struct{} // closed when a stop escalates to force
	bootErr chan error    // the guest reported a failure before it was ready
	force   sync.Once

	mu      sync.Mutex
	state   string
	phases  []api.Phase
	ready   bool
	lastErr string
	// bootFailure is why the first boot of an upgraded image was given up (see upgrade.go).
	bootFailure string
	started     time.Time

	channelErr       string    // why the guest channel is down, or ""
	channelDownSince time.Time // zero while it is up
}

// Run runs the host agent until the VM stops: on a stop request, on ctx's end (SIGTERM), or
// when the VM exits by itself. It returns nil after a requested stop.
func Run(ctx context.Context, o Options) (err error) {
	m := o.Machine
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.GuestStopTimeout == 0 {
		o.GuestStopTimeout = 60 * time.Second
	}
	if o.ACPITimeout == 0 {
		o.ACPITimeout = 15 * time.Second
	}
	if o.KillTimeout == 0 {
		o.KillTimeout = 30 * time.Second
	}
	lock, err := store.TryLockLive(m.AgentLock())
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("machine %q is already running (host agent pid %d)", m.Name, store.ReadPid(m.PidFile()))
		}
		return err
	}
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			err = errors.Join(err, cleanups[i]())
		}
	}()
	cleanups = append(cleanups, lock.Unlock)
	if err := atomicfile.WriteFile(m.PidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	cleanups = append(cleanups, func() error { return ignoreNotExist(os.Remove(m.PidFile())) })

	events, err := newEventLog(m.EventsPath())
	if err != nil {
		return fmt.Errorf("machine %q: events: %w", m.Name, err)
	}
	cleanups = append(cleanups, func() error { events.close(); return nil })
	a := &Agent{o: o, log: o.Logger, events: events, stopReq: make(chan bool, 1), forced: make(chan struct{}), bootErr: make(chan error, 1), state: StateStarting, started: time.Now()}

	dcfg, err := driverConfig(m, o.Config)
	if err != nil {
		return a.fail(err)
	}
	if err := m.CheckDataDisk(o.Config); err != nil {
		return a.fail(err)
	}
	drv, err := o.NewDriver(dcfg)
	if err != nil {
		return a.fail(err)
	}
	a.drv = drv
	if sr, ok := drv.(driver.StateReporter); ok {
		sr.ReportStates(func(state string) { a.emit(Event{Type: EventVMState, Message: state}) })
	}
	if cw, ok := drv.(driver.ChannelWatcher); ok {
		cw.WatchChannel(a.onChannel)
	}
	if hs, ok := drv.(driver.HostServer); ok {
		svc := &hostsvc.Server{HostAccess: !o.Config.DisableHostAccess, Log: a.log}
		for _, sh := range dcfg.Shares {
			svc.Shares = append(svc.Shares, hostsvc.Share{HostPath: sh.HostPath, GuestPath: sh.GuestPath})
		}
		hs.ServeHost(svc.Handler)
		cleanups = append(cleanups, svc.Close)
	}
	a.guest = newGuestClient(drv)
	if a.idle = a.newIdler(drv); a.idle != nil {
		a.drv = awakeDriver{Driver: drv, idle: a.idle}
	}
	a.ports = a.newForwarder(drv)
	cleanups = append(cleanups, a.ports.Close)
	ctrl, err := a.serveControl(m.ControlSocket())
	if err != nil {
		return a.fail(fmt.Errorf("control socket: %w", err))
	}
	cleanups = append(cleanups, ctrl)
	a.emit(Event{Type: EventStarting, Message: describeDriver(o.Config, drv)})
	if err := drv.Start(ctx); err != nil {
		return a.fail(fmt.Errorf("start VM: %w", err))
	}
	if stop := a.startForwardNIC(drv); stop != nil {
		cleanups = append(cleanups, stop)
	}
	vmDone := make(chan error, 1)
	go func() { vmDone <- drv.Wait() }()
	a.emit(Event{Type: EventVMStarted})
	if a.firstBoot() {
		t := time.AfterFunc(firstBootTimeout, func() {
			a.failFirstBoot(fmt.Sprintf("Docker was not ready within %s", firstBootTimeout))
		})
		cleanups = append(cleanups, func() error { t.Stop(); return nil })
	}

	guestCtx, stopGuest := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.followGuest(guestCtx) }()
	if a.idle != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.idle.run(guestCtx) }()
	}
	cleanups = append(cleanups, func() error { stopGuest(); wg.Wait(); return nil })

	select {
	case err := <-vmDone:
		a.setState(StateStopped)
		msg := crashMessage(m, err)
		a.rollbackUpgrade(msg)
		a.emit(Event{Type: EventStopped, StopMethod: StopCrash, Message: msg})
		return errors.New(msg)
	case err := <-a.bootErr:
		// A guest that failed to boot idles holding its memory: stop it, and say why.
		return a.fail(errors.Join(err, a.stop(false, vmDone)))
	case force := <-a.stopReq:
		err := a.stop(force, vmDone)
		a.mu.Lock()
		why := a.bootFailure
		a.mu.Unlock()
		if why != "" {
			a.rollbackUpgrade(why)
			return errors.New(why)
		}
		return err
	case <-ctx.Done():
		return a.stop(false, vmDone)
	}
}

func describeDriver(c *store.Config, d driver.Driver) string {
	msg := fmt.Sprintf("driver %s, %s, %d CPUs, %d MiB", c.Driver, c.Arch, c.CPUs, c.MemoryMiB)
	if ad, ok := d.(interface{ Accel() (string, string) }); ok {
		accel, why := ad.Accel()
		msg += fmt.Sprintf(", accelerator %s (%s)", accel, why)
	}
	return msg
}

func driverConfig(m *store.Machine, c *store.Config) (driver.Config, error) {
	img, err := vmimage.Load(m.ImageDir())
	if err != nil {
		return driver.Config{}, fmt.Errorf("machine %q: guest image: %w (recreate the machine, or rebuild the image with `machine image build`)", m.Name, err)
	}
	if img.Arch != c.Arch {
		return driver.Config{}, fmt.Errorf("machine %q: image is for %s but the machine is %s", m.Name, img.Arch, c.Arch)
	}
	dir := m.ImageDir()
	return driver.Config{
		Name: m.Name, Dir: m.Dir, Arch: c.Arch, CPUs: c.CPUs, MemoryMiB: c.MemoryMiB,
		Kernel:       img.Path(dir, vmimage.RoleKernel),
		Initrd:       img.Path(dir, vmimage.RoleInitramfs),
		RootImage:    img.Path(dir, vmimage.RoleRoot),
		DataDisk:     m.DataDisk(),
		Cmdline:      img.Cmdline,
		SerialLog:    m.SerialLog(),
		HostForwards: c.QEMUHostForwards,
		Shares:       driverShares(c.Shares, c.ReadOnlyShares),
		Rosetta:      driverRosetta(c),
		NoHostAccess: c.DisableHostAccess,
	}, nil
}

// driverRosetta is the translator a machine shares with its guest: Apple's Rosetta (vz
// shares it itself), or a stand-in folder that tests share under QEMU.
func driverRosetta(c *store.Config) *driver.Rosetta {
	if !c.Rosetta && c.RosettaStandIn == "" {
		return nil
	}
	return &driver.Rosetta{HostPath: c.RosettaStandIn}
}

// driverShares tags each shared folder and places it at its guest path.
func driverShares(paths, readOnly []string) []driver.Share {
	var out []driver.Share
	for i, p := range paths {
		gp, err := shares.CheckGuestPath(runtime.GOOS, p)
		if err != nil {
			continue // validated at create; a folder that became invalid is skipped, not fatal
		}
		out = append(out, driver.Share{Tag: fmt.Sprintf("share%d", i), HostPath: p, GuestPath: gp, ReadOnly: slices.Contains(readOnly, p)})
	}
	return out
}

// fail records a start failure as an event and returns it.
func (a *Agent) fail(err error) error {
	a.mu.Lock()
	a.lastErr = err.Error()
	a.state = StateStopped
	a.mu.Unlock()
	a.emit(Event{Type: EventError, Message: err.Error()})
	a.rollbackUpgrade(err.Error())
	return err
}

func (a *Agent) emit(e Event) {
	a.log.Info("event", "type", e.Type, "message", e.Message, "phase", e.Phase)
	a.events.emit(e)
}

func (a *Agent) setState(s string) {
	a.mu.Lock()
	a.state = s
	a.mu.Unlock()
}

// requestStop asks Run to stop the VM; a second request can only escalate to force, which
// cuts short the clean steps of a stop under way.
func (a *Agent) requestStop(force bool) {
	if force {
		a.force.Do(func() { close(a.forced) })
	}
	select {
	case a.stopReq <- force:
	default: // a stop is pending or under way
	}
}

// stop shuts the VM down: the guest agent's clean shutdown, then the ACPI power button, then
// kill, each after a timeout. force goes straight to kill. Every wait is bounded; a VM that
// outlives its kill is reported (event, log, error) rather than waited for.
func (a *Agent) stop(force bool, vmDone <-chan error) error {
	a.setState(StateStopping)
	a.emit(Event{Type: EventStopping})
	if !force {
		// A paused guest cannot shut itself down.
		if err := bounded(10*time.Second, a.idle.stop); err != nil {
			a.log.Warn("resume before stop failed", "err", err)
		}
	}
	method := StopKill
	switch {
	case force:
	case a.stopGuest(vmDone):
		method = StopGuest
	case a.stopACPI(vmDone):
		method = StopACPI
	}
	if method == StopKill {
		if err := a.killVM(vmDone); err != nil {
			return a.fail(err)
		}
	}
	a.setState(StateStopped)
	a.emit(Event{Type: EventStopped, StopMethod: method, Message: "stopped (" + method + ")"})
	return nil
}

func (a *Agent) stopGuest(vmDone <-chan error) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := a.guest.shutdown(ctx)
	cancel()
	if err != nil {
		a.log.Warn("guest shutdown request failed", "err", err)
		return false
	}
	return a.waitDone(vmDone, a.o.GuestStopTimeout)
}

func (a *Agent) stopACPI(vmDone <-chan error) bool {
	select {
	case <-a.forced:
		return false
	default:
	}
	err := bounded(5*time.Second, func(ctx context.Context) error { return a.drv.RequestStop(ctx) })
	if err != nil {
		a.log.Warn("ACPI power-off failed", "err", err)
		return false
	}
	return a.waitDone(vmDone, a.o.ACPITimeout)
}

// killVM kills the VM and waits, at most KillTimeout, for it to exit. A Kill error alone is
// not a failure (the VM may be gone already); a VM still running at the deadline is.
func (a *Agent) killVM(vmDone <-chan error) error {
	killed := make(chan error, 1)
	go func() { killed <- a.drv.Kill() }()
	t := time.NewTimer(a.o.KillTimeout)
	defer t.Stop()
	var killErr error
	for {
		select {
		case <-vmDone:
			return nil
		case killErr = <-killed:
			killed = nil
			if killErr != nil {
				a.log.Error("kill failed", "err", killErr)
			}
		case <-t.C:
			why := "the hypervisor did not answer the kill"
			if killed == nil {
				why = "the kill returned but the VM did not exit"
				if killErr != nil {
					why = "the kill failed: " + killErr.Error()
				}
			}
			return fmt.Errorf("machine %q: the VM did not stop within %s of being killed (%s); its hypervisor process may still be running: end it, then run `machine start %s` (see %s)",
				a.o.Machine.Name, a.o.KillTimeout, why, a.o.Machine.Name, a.o.Machine.AgentLog())
		}
	}
}

// waitDone waits at most d for the VM to exit; a force request cuts the wait short.
func (a *Agent) waitDone(done <-chan error, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-a.forced:
		return false
	case <-t.C:
		return false
	}
}

// bounded runs fn with a context that ends after d, and returns by then even if fn ignores
// the context (its result is then dropped).
func bounded(d time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ignoreNotExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// listenPrivate listens on a unix socket only the user can use, replacing a stale one left
// by a crashed agent (the agent lock proves no live agent owns it).
func listenPrivate(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
