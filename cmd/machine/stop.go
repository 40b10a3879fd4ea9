package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/store"
)

func newStopCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "stop [NAME]",
		Short: "Stop a machine cleanly (engine stopped, disk synced), or kill it with --force",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, _, err := existingMachine(machineName(args))
			if err != nil {
				return err
			}
			return runStop(cmd.Context(), cmd.OutOrStdout(), m, force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "power off at once instead of shutting down cleanly")
	return cmd
}

func runStop(ctx context.Context, out io.Writer, m *store.Machine, force bool) error {
	if !agentRunning(m) {
		cleanStale(m)
		o, err := endOrphanQEMU(ctx, m, force)
		if err != nil {
			return err
		}
		if o != nil {
			fmt.Fprintf(out, "Machine %q stopped (%s)\n", m.Name, orphanText(o))
			return nil
		}
		fmt.Fprintf(out, "Machine %q is not running\n", m.Name)
		return nil
	}
	c := hostagent.NewClient(m.ControlSocket())
	if err := c.Stop(ctx, force); err != nil {
		if !force {
			return fmt.Errorf("machine %q: %w (`machine stop --force %s` kills it)", m.Name, err, m.Name)
		}
		// The agent holds its lock but does not answer: kill it. Its QEMU dies with it on
		// Linux and Windows; on macOS endOrphanQEMU below ends it.
		if kerr := killAgent(m); kerr != nil {
			return fmt.Errorf("machine %q: %w; killing the host agent failed too: %v", m.Name, err, kerr)
		}
		fmt.Fprintf(out, "Host agent of %q did not answer; killed it\n", m.Name)
	}
	fmt.Fprintf(out, "Stopping machine %q...\n", m.Name)
	method := ""
	c.Events(ctx, func(e hostagent.Event) bool {
		if e.Type == hostagent.EventStopped {
			method = e.StopMethod
		}
		return true // until the agent exits and closes the stream
	})
	// The agent releases its lock last; wait for it so a following start sees a stopped machine.
	for agentRunning(m) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if o, err := endOrphanQEMU(ctx, m, true); err != nil {
		return err
	} else if o != nil {
		fmt.Fprintf(out, "Machine %q stopped (%s)\n", m.Name, orphanText(o))
		return nil
	}
	switch method {
	case hostagent.StopGuest:
		fmt.Fprintf(out, "Machine %q stopped cleanly\n", m.Name)
	case "":
		fmt.Fprintf(out, "Machine %q stopped\n", m.Name)
	default:
		fmt.Fprintf(out, "Machine %q stopped (%s)\n", m.Name, stopMethodText(method))
	}
	return nil
}

func stopMethodText(m string) string {
	switch m {
	case hostagent.StopACPI:
		return "the guest did not answer the clean shutdown; it powered off on the ACPI power button"
	case hostagent.StopKill:
		return "killed: the guest did not shut down in time or --force was given"
	case hostagent.StopCrash:
		return "it had crashed"
	}
	return m
}

func newRestartCommand() *cobra.Command {
	o := &startOptions{timeout: 10 * time.Minute}
	cmd := &cobra.Command{
		Use:   "restart [NAME]",
		Short: "Stop a machine cleanly and start it again",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, _, err := existingMachine(machineName(args))
			if err != nil {
				return err
			}
			if err := runStop(cmd.Context(), cmd.OutOrStdout(), m, false); err != nil {
				return err
			}
			return runStart(cmd.Context(), cmd.OutOrStdout(), o, m.Name)
		},
	}
	return cmd
}

// stopToChange stops a running machine before a command changes it (set, upgrade), or says
// how to, unless restart allows the stop; it reports whether the machine was running, so the
// command can start it again. why, when given, ends with "; " and says why it must be stopped.
func stopToChange(ctx context.Context, out io.Writer, m *store.Machine, name string, restart bool, why string) (bool, error) {
	if !agentRunning(m) {
		return false, nil
	}
	if !restart {
		return true, fmt.Errorf("machine %q is running: %sstop it first (`machine stop%s`) or pass --restart", name, why, nameArg(name))
	}
	return true, runStop(ctx, out, m, false)
}
