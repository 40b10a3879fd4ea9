package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/guestagent/boot"
	"github.com/machine-run/machine/guestagent/cmdline"
	"github.com/machine-run/machine/guestagent/control"
	"github.com/machine-run/machine/guestagent/dockerproxy"
	"github.com/machine-run/machine/guestagent/engine"
	gexec "github.com/machine-run/machine/guestagent/exec"
	"github.com/machine-run/machine/guestagent/forward"
	"github.com/machine-run/machine/guestagent/hostsvc"
	"github.com/machine-run/machine/guestagent/initramfs"
	"github.com/machine-run/machine/guestagent/ports"
	"github.com/machine-run/machine/guestagent/reaper"
	"github.com/machine-run/machine/guestagent/state"
	"github.com/machine-run/machine/guestagent/transport"
)

func main() {
	os.Setenv("PATH", gexec.DefaultPath)
	logw := &logWriter{console: os.Stderr}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{ReplaceAttr: uptimeAttr}))
	slog.SetDefault(log)
	if os.Args[0] == "/init" {
		err := initramfs.Run(log, boot.Uptime)
		fatal(log, "stage 1", err)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "machine-guestagent: stage 2 must run as PID 1 inside the guest")
		os.Exit(2)
	}
	a := &agent{log: log, logw: logw, state: state.New(boot.Uptime), reaper: reaper.New()}
	a.run()
}

// cpus pins the kernel code keys containers would flip, then brings up the CPUs a guest
// booted with maxcpus=1 left offline (see guestagent/boot/cpus_linux.go). Bringing a CPU up
// takes about 0.6 s under emulation; the data disk, network and shares are set up meanwhile,
// and the returned channel closes once it is done: the engine starts after it, so that its
// daemons size their thread pools for every CPU.
func (a *agent) cpus() <-chan struct{} {
	if err := boot.PinCgroupKeys("/sys/fs/cgroup"); err != nil {
		a.log.Warn("cpus", "err", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		began := time.Now()
		online, brought, err := boot.OnlineCPUs("/sys/devices/system/cpu")
		if err != nil {
			a.log.Error("cpus: some CPUs stay offline", "online", online, "err", err)
		}
		if brought > 0 {
			a.log.Info("cpus: brought up after the boot's code patching", "online", online, "brought_up", brought, "took", time.Since(began).Round(time.Millisecond))
		}
	}()
	return done
}

// uptimeAttr stamps log lines with seconds since boot instead of the (maybe unset) wall clock.
func uptimeAttr(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Float64("t", float64(int64(boot.Uptime()*1000))/1000)
	}
	return a
}

// fatal reports an unrecoverable boot error on the console and powers off: PID 1 must not
// exit (the kernel would panic), and a VM that stops tells the host more than one that hangs.
func fatal(log *slog.Logger, what string, err error) {
	log.Error("machine: boot failed", "stage", what, "err", err)
	time.Sleep(time.Second)
	boot.PowerOff()
	select {}
}

type agent struct {
	log    *slog.Logger
	logw   *logWriter
	state  *state.State
	reaper *reaper.Reaper
	engine *engine.Engine
	params bootparams.Params
	// forwardNIC: the forwarding NIC is up (set by network, read after netUp).
	forwardNIC bool

	channel *transport.Channel

	dataMounted  bool
	shutdownOnce sync.Once
}

var services = []uint32{api.ServiceControl, api.ServiceExec, api.ServiceDocker, api.ServiceForward}

func (a *agent) run() {
	ctx := context.Background()
	a.stage1Phases()
	if err := boot.MountBase(); err != nil {
		a.log.Warn("base mounts", "err", err)
	}
	if _, err := boot.RaiseFileLimit(); err != nil {
		a.log.Warn("open-file limit", "err", err)
	}
	go a.reaper.Watch(ctx)
	a.reaper.Orphan = func(st reaper.Status) { a.log.Debug("reaped orphan", "pid", st.Pid, "status", st.String()) }
	a.watchSignals()
	a.versions()

	p, err := cmdline.ReadProc()
	if err != nil {
		a.state.Fail(err)
		a.log.Error("boot", "err", err)
	}
	a.params = p
	if len(p.Unknown) > 0 {
		a.log.Warn("kernel command line: contract words this agent does not know (a newer host?)", "words", p.Unknown)
	}
	a.bootClock()

	if p.Channel == bootparams.ChannelSerial {
		a.serveChannel(ctx)
	}
	detail := ""
	if err := boot.LoadModules(ctx, a.reaper, a.log, api.RootModules); err != nil {
		detail = err.Error()
	} else if err := boot.EndModuleAutoload(); err != nil {
		a.log.Warn("modules", "err", err)
	}
	cpusUp := a.cpus()
	a.state.Phase(api.PhaseModules, detail)
	a.log.Info("phase", "name", api.PhaseModules)
	if p.Channel == bootparams.ChannelVsock {
		a.serveChannel(ctx)
	}

	// The network and the host services behind it need nothing from the data disk, whose
	// mount waits while a CPU comes up: both are set up at once, and the engine starts once
	// both are done.
	netUp := make(chan struct{})
	go func() {
		defer close(netUp)
		a.network(ctx)
		a.hostServices(ctx)
	}()
	if !a.dataDisk(ctx) {
		select {} // the error is reported; the host decides (shutdown still works)
	}
	a.shares()
	a.rosetta()
	<-netUp

	a.engine = &engine.Engine{Reaper: a.reaper, Log: a.log, Report: a.state, LogDir: "/var/lib/machine/logs"}
	if !a.params.NoHostAccess {
		a.engine.HostGatewayIP = api.HostGatewayIP
	}
	if a.forwardNIC {
		a.engine.MTU = bootparams.ForwardNICMTU
	}
	<-cpusUp
	a.engine.Start(ctx)
	go func() {
		<-a.state.ReadyChan()
		a.log.Info("phase", "name", api.PhaseDocker, "ready", true)
	}()
	go a.fileEvents(ctx)
	go func() {
		<-a.state.ReadyChan()
		w := &ports.Watcher{Socket: engine.DockerSocket, Report: a.state, Log: a.log}
		if err := w.Run(ctx); err != nil {
			a.log.Error("ports watcher stopped", "err", err)
		}
	}()
	select {}
}

// bootClock moves a clock that is behind the host's boot-time reading forward, so TLS, file
// times and logs are right before the host's first time sync.
func (a *agent) bootClock() {
	now := time.Now()
	t, ok := cmdline.BootClock(a.params.Time, now, time.Duration(boot.Uptime()*float64(time.Second)))
	if !ok {
		return
	}
	if err := boot.SetClock(t); err != nil {
		a.log.Warn("clock from the kernel command line", "err", err)
		return
	}
	a.log.Info("clock set from the kernel command line", "was", now.UTC().Format(time.RFC3339), "now", t.UTC().Format(time.RFC3339))
}

func (a *agent) stage1Phases() {
	var phases []api.Phase
	if s := os.Getenv(initramfs.PhasesEnv); s != "" {
		if err := json.Unmarshal([]byte(s), &phases); err != nil {
			a.log.Warn("stage 1 phases", "err", err)
		}
		os.Unsetenv(initramfs.PhasesEnv)
	}
	for _, p := range phases {
		a.state.AddPhase(p)
		a.log.Info("phase", "name", p.Name, "seconds", p.Seconds, "detail", p.Detail)
	}
}

func (a *agent) versions() {
	var v api.Versions
	if b, err := os.ReadFile(api.VersionsPath); err == nil {
		if err := json.Unmarshal(b, &v); err != nil {
			a.log.Warn("versions file", "path", api.VersionsPath, "err", err)
		}
	}
	v.Agent = version
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		v.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	a.state.SetVersions(v)
}

// serveChannel opens the host channel and serves every service on it.
func (a *agent) serveChannel(ctx context.Context) {
	ch, err := transport.Open(ctx, a.params.Channel, services, a.log)
	if err != nil {
		a.state.Fail(err)
		a.log.Error("channel", "err", err)
		return
	}
	a.channel = ch
	ctl := &control.Service{
		State:    a.state,
		Shutdown: control.ShutdownFunc(a.shutdown),
		SetTime:  boot.SetClock,
		Log:      a.log,
	}
	ex := &gexec.Service{Reaper: a.reaper, Log: a.log}
	run := func(name string, f func() error) {
		go func() {
			if err := f(); err != nil {
				a.log.Error("service stopped", "service", name, "err", err)
			}
		}()
	}
	run("channel", func() error { return ch.Serve(ctx) })
	run("control", func() error { return ctl.Serve(ctx, ch.Listener(api.ServiceControl)) })
	run("exec", func() error { return ex.Serve(ctx, ch.Listener(api.ServiceExec)) })
	run("docker", func() error {
		return dockerproxy.Serve(ctx, ch.Listener(api.ServiceDocker), engine.DockerSocket, a.log)
	})
	run("forward", func() error { return forward.Serve(ctx, ch.Listener(api.ServiceForward)) })
	a.state.Phase(api.PhaseAgent, a.params.Channel)
	a.log.Info("phase", "name", api.PhaseAgent, "channel", a.params.Channel)
}

// dataDisk prepares the data disk; false means boot must not go on.
func (a *agent) dataDisk(ctx context.Context) bool {
	if a.params.Data == "" {
		a.log.Warn("no data disk on the kernel command line: engine state lives in memory")
		a.state.Phase(api.PhaseDataDisk, "none")
		return true
	}
	d, err := boot.PrepareData(ctx, a.reaper, a.log, a.params.Data, api.DataMount)
	a.state.SetDataDisk(d)
	if err != nil {
		a.state.Phase(api.PhaseDataDisk, "error: "+err.Error())
		a.state.Fail(err)
		a.log.Error("data disk", "err", err)
		// Never go on without the disk: the engine would write to memory and the host would
		// believe its data persisted. ErrUnknownDisk in the message tells the user why.
		return false
	}
	a.dataMounted = true
	logs := "/var/lib/machine/logs"
	if err := os.MkdirAll(logs, 0o750); err == nil {
		f, err := os.OpenFile(filepath.Join(logs, "agent.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err == nil {
			a.logw.SetFile(f)
		}
	}
	detail := "mounted " + d.Device
	if d.Formatted {
		detail = "formatted " + d.Device
	}
	if d.Check != "" {
		detail += "; fsck: " + d.Check
	}
	if d.Grown != "" {
		detail += "; " + d.Grown
	}
	a.state.Phase(api.PhaseDataDisk, detail)
	a.log.Info("phase", "name", api.PhaseDataDisk, "detail", detail)
	return true
}

func (a *agent) network(ctx context.Context) {
	if err := boot.SetHostname("/", a.params.Hostname); err != nil {
		a.log.Warn("hostname", "err", err)
	}
	nic, err := boot.SetupNetwork(ctx, a.reaper, a.log, a.params.Net)
	detail := a.params.Net + " " + nic
	if err != nil {
		a.log.Error("network", "err", err)
		detail += " error: " + err.Error()
	}
	if a.params.Net == bootparams.NetUser {
		// Before the engine starts: no container ever reaches the host's loopback this way.
		if err := boot.CloseHostAlias(ctx, a.reaper); err != nil {
			a.log.Error("network", "err", err)
			detail += " error: " + err.Error()
		} else {
			detail += "; host alias " + boot.UserHostAlias4 + " closed"
		}
	}
	if a.params.ForwardNIC {
		// Not fatal: the host agent falls back to the channel when nothing answers here.
		if fnic, err := boot.SetupForwardNIC(ctx, a.reaper); err != nil {
			a.log.Error("network", "err", err)
			detail += "; forwarding NIC error: " + err.Error()
		} else {
			detail += "; forwarding NIC " + fnic
			a.forwardNIC = true
		}
	}
	a.state.Phase(api.PhaseNetwork, detail)
	a.log.Info("phase", "name", api.PhaseNetwork, "detail", detail)
}

// hostServices starts host.docker.internal and DNS through the host before the engine, so
// dockerd and the first container already resolve through it.
func (a *agent) hostServices(ctx context.Context) {
	if a.channel == nil {
		return
	}
	svc := &hostsvc.Service{
		Dial: a.channel.DialHost, HostAccess: !a.params.NoHostAccess, Reaper: a.reaper, Log: a.log,
		WriteResolvConf: func(server string) error { return boot.WriteResolvConf("/", server) },
	}
	if err := svc.Start(ctx); err != nil {
		// Containers keep the hypervisor's DNS (resolv.conf is only rewritten on success).
		a.log.Error("host services", "err", err)
		return
	}
	a.log.Info("host services", "dns", api.DNSServerIP, "host_gateway", !a.params.NoHostAccess)
}

// fileEvents replays host changes under bind-mounted shares once the engine answers.
func (a *agent) fileEvents(ctx context.Context) {
	if a.channel == nil || len(a.params.Shares) == 0 {
		return
	}
	<-a.state.ReadyChan()
	fe := &hostsvc.FileEvents{Dial: a.channel.DialHost, Socket: engine.DockerSocket, Log: a.log}
	for _, s := range a.params.Shares {
		fe.Shares = append(fe.Shares, s.GuestPath)
	}
	fe.Run(ctx)
}

// shares mounts the host folders before the engine starts, so containers can bind-mount them.
func (a *agent) shares() {
	if len(a.params.Shares) == 0 {
		return
	}
	mounted, err := boot.MountShares(a.params.Shares)
	detail := strings.Join(mounted, " ")
	if err != nil {
		a.log.Error("shares", "err", err)
		detail += " error: " + err.Error()
	}
	a.state.Phase(api.PhaseShares, detail)
	a.log.Info("phase", "name", api.PhaseShares, "detail", detail)
}

// rosetta registers the host's x86_64 translator before the engine starts, so the first
// amd64 container already runs. A failure is reported in the phase, never silently.
func (a *agent) rosetta() {
	r := a.params.Rosetta
	if r == nil {
		return
	}
	detail, err := boot.SetupRosetta(r.Tag, r.MountPoint)
	if err != nil {
		a.log.Error("rosetta", "err", err)
		detail = "error: " + err.Error()
	}
	a.state.Phase(api.PhaseRosetta, detail)
	a.log.Info("phase", "name", api.PhaseRosetta, "detail", detail)
}

// watchSignals turns Ctrl-Alt-Del (SIGINT to init once CAD is off) and SIGTERM/SIGPWR into
// a clean shutdown.
func (a *agent) watchSignals() {
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGINT, unix.SIGTERM, unix.SIGPWR)
	go func() {
		s := <-sig
		a.log.Info("shutdown requested by signal", "signal", s.String())
		a.shutdown(context.Background())
	}()
	go a.watchPowerButton()
}

// shutdown stops the engine, every other process, syncs, unmounts and powers off.
func (a *agent) shutdown(ctx context.Context) {
	a.shutdownOnce.Do(func() {
		start := time.Now()
		a.log.Info("shutdown: stopping the engine")
		if a.engine != nil {
			a.engine.Stop()
		}
		a.log.Info("shutdown: stopping remaining processes")
		boot.KillAll(5 * time.Second)
		unix.Sync()
		a.logw.CloseFile()
		if a.dataMounted {
			if err := boot.UnmountData(api.DataMount); err != nil {
				a.log.Error("shutdown: unmount data disk", "err", err)
			}
		}
		unix.Sync()
		a.log.Info("shutdown: powering off", "took", time.Since(start).Round(time.Millisecond))
		if err := boot.PowerOff(); err != nil {
			a.log.Error("shutdown: power off", "err", err)
		}
	})
}
