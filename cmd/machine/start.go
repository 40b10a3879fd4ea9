package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/machine-run/machine/internal/logrotate"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/store"
)

type startOptions struct {
	create   createOptions
	activate bool
	timeout  time.Duration
	// createFlags are the create flags the user set: they only apply to a new machine.
	createFlags []string
}

// changedCreateFlags lists the create flags set on cmd's command line.
func changedCreateFlags(cmd *cobra.Command) []string {
	var set []string
	probe := &cobra.Command{}
	(&createOptions{}).addFlags(probe)
	probe.Flags().VisitAll(func(f *pflag.Flag) {
		if cmd.Flags().Changed(f.Name) {
			set = append(set, "--"+f.Name)
		}
	})
	return set
}

func newStartCommand() *cobra.Command {
	o := &startOptions{}
	cmd := &cobra.Command{
		Use:   "start [NAME]",
		Short: "Start a machine (creating it if needed) and wait until Docker is ready",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.create.progress = cmd.ErrOrStderr()
			o.createFlags = changedCreateFlags(cmd)
			return runStart(cmd.Context(), cmd.OutOrStdout(), o, machineName(args))
		},
	}
	o.create.addFlags(cmd)
	cmd.Flags().BoolVar(&o.activate, "activate", false, "make the machine's docker context the current one")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long to wait for Docker to be ready")
	return cmd
}

func runStart(ctx context.Context, out io.Writer, o *startOptions, name string) error {
	began := time.Now()
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive, like 10m", o.timeout)
	}
	_, m, err := openMachine(name)
	if err != nil {
		return err
	}
	if m.Exists() && len(o.createFlags) > 0 && settable(o.createFlags) {
		return fmt.Errorf("machine %q exists: %s only apply when start creates a machine; change its settings with `machine set%s %s` (add --restart if it is running)",
			name, strings.Join(o.createFlags, ", "), nameArg(name), strings.Join(o.createFlags, " ... ")+" ...")
	}
	if m.Exists() && len(o.createFlags) > 0 {
		return fmt.Errorf("machine %q exists: %s only apply when start creates a machine, and its settings are not changed; remove the flags, or recreate it with `machine rm %s` and `machine create %s %s`",
			name, strings.Join(o.createFlags, ", "), name, name, strings.Join(o.createFlags, " ..."+" ")+" ...")
	}
	if !m.Exists() {
		fmt.Fprintf(out, "Creating machine %q\n", name)
		if _, err := runCreate(ctx, &o.create, name); err != nil {
			return err
		}
	}
	cfg, err := m.LoadConfig()
	if err != nil {
		return err
	}
	// Two starts of one machine never race: the second waits, then finds it running.
	lock, err := store.LockContext(ctx, m.StartLock())
	if err != nil {
		return err
	}
	defer lock.Unlock()

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	agentDone := make(chan error, 1)
	pending := false
	if agentRunning(m) {
		fmt.Fprintf(out, "Machine %q is already running\n", name)
	} else {
		if cfg.Driver == "vz" {
			if err := checkVZ(); err != nil {
				return fmt.Errorf("machine %q: %w", name, err)
			}
		}
		// Under the start lock: finish or undo an interrupted upgrade before booting.
		if cfg, err = m.LoadConfig(); err != nil {
			return err
		}
		if err := m.RecoverUpgrade(cfg); err != nil {
			return err
		}
		pending = cfg.Pending()
		if err := launchAgent(out, m, cfg, agentDone); err != nil {
			return err
		}
	}
	if err := followStart(ctx, out, m, agentDone, began); err != nil {
		if !pending {
			return err
		}
		// The first boot of an upgraded image failed: the host agent puts the previous
		// image back, and start boots that.
		if err := bootAfterRollback(ctx, out, m, agentDone, began, err); err != nil {
			return err
		}
	}
	if err := writeDockerContext(m, o.activate); err != nil {
		fmt.Fprintf(out, "warning: docker context: %v\n", err)
	}
	printDockerHint(out, m, o.activate)
	return nil
}

// keptBoots is how many earlier boots' logs a machine keeps.
const keptBoots = 5

// launchAgent clears what a dead host agent left and spawns a new one for m.
func launchAgent(out io.Writer, m *store.Machine, cfg *store.Config, agentDone chan<- error) error {
	cleanStale(m)
	if err := os.WriteFile(m.EventsPath(), nil, 0o600); err != nil {
		return err
	}
	// One console and host-agent log per boot: the last boot's crash survives this start
	// (`machine logs --boot -1`), and a crash is classified from this boot's console only.
	for _, p := range []string{m.SerialLog(), m.AgentLog()} {
		if err := logrotate.Rotate(p, keptBoots); err != nil {
			return fmt.Errorf("machine %q: %w", m.Name, err)
		}
	}
	fmt.Fprintf(out, "Starting machine %q (%s, %d CPUs, %d MiB)\n", m.Name, cfg.Arch, cfg.CPUs, cfg.MemoryMiB)
	return spawnAgent(m, agentDone)
}

// spawnAgent starts the machine's host agent as a detached process that outlives this one.
func spawnAgent(m *store.Machine, done chan<- error) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(m.AgentLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "hostagent", m.Name)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = detachedAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start host agent: %w", err)
	}
	go func() { done <- cmd.Wait() }()
	return nil
}

// followStart prints the boot's progress from the host agent's events until Docker is
// ready, the boot fails, or ctx ends.
func followStart(ctx context.Context, out io.Writer, m *store.Machine, agentDone <-chan error, began time.Time) error {
	c := hostagent.NewClient(m.ControlSocket())
	if err := waitForControl(ctx, c, agentDone); err != nil {
		return startFailed(m, err)
	}
	var result error
	var last float64
	err := c.Events(ctx, func(e hostagent.Event) bool {
		switch e.Type {
		case hostagent.EventStarting:
			fmt.Fprintf(out, "  %s\n", e.Message)
		case hostagent.EventPhase:
			fmt.Fprintf(out, "  %-11s %6.2fs  (+%.2fs)%s\n", e.Phase.Name, e.Phase.Seconds, e.Phase.Seconds-last, detail(e.Phase.Detail))
			last = e.Phase.Seconds
		case hostagent.EventReady:
			fmt.Fprintf(out, "Machine %q is ready: Docker answers (%.1fs)\n", m.Name, time.Since(began).Seconds())
			return false
		case hostagent.EventError:
			result = errors.New(e.Message)
			return false
		case hostagent.EventStopped:
			result = errors.New(e.Message)
			return false
		}
		return true
	})
	if result == nil && err != nil {
		if isCanceled(ctx) {
			result = fmt.Errorf("gave up waiting for Docker: %w (the machine keeps booting; `machine stop%s` stops it)", ctx.Err(), nameArg(m.Name))
		} else {
			result = fmt.Errorf("the host agent exited during start: %w", err)
		}
	}
	if result != nil {
		return startFailed(m, result)
	}
	return nil
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return "  " + s
}

// waitForControl waits for the agent's control socket, or for the agent to die.
func waitForControl(ctx context.Context, c *hostagent.Client, agentDone <-chan error) error {
	delay := 10 * time.Millisecond
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Status(sctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case err := <-agentDone:
			return fmt.Errorf("the host agent exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// startFailed adds where to look to a start error, including the last recorded event.
func startFailed(m *store.Machine, err error) error {
	if last := lastEvent(m); last != nil && last.Type == hostagent.EventError && last.Message != err.Error() {
		err = fmt.Errorf("%w: %s", err, last.Message)
	}
	return fmt.Errorf("machine %q failed to start: %w\n  host agent log: %s\n  serial console: %s", m.Name, err, m.AgentLog(), m.SerialLog())
}

// settable reports whether every flag in flags can be changed with `machine set`.
func settable(flags []string) bool {
	for _, f := range flags {
		switch f {
		case "--cpus", "--memory", "--disk", "--share":
		default:
			return false
		}
	}
	return true
}
