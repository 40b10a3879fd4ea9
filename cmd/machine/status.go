package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/store"
)

func newStatusCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show a machine's state, resources and boot phases",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFormat(format); err != nil {
				return err
			}
			m, cfg, err := existingMachine(machineName(args))
			if err != nil {
				return err
			}
			st := machineStatus(cmd.Context(), m, cfg)
			return printStatus(cmd.OutOrStdout(), format, st)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template (e.g. '{{.State}}')")
	return cmd
}

// machineStatus asks the host agent, or reports a stopped machine from its config.
func machineStatus(ctx context.Context, m *store.Machine, cfg *store.Config) hostagent.Status {
	stopped := hostagent.Status{
		Name: m.Name, State: hostagent.StateStopped, Arch: cfg.Arch, CPUs: cfg.CPUs,
		MemoryMiB: cfg.MemoryMiB, DiskGiB: cfg.DiskGiB, Driver: cfg.Driver,
		AutoPause: hostagent.AutoPauseLabel(cfg.AutoPauseIdle()),
	}
	if !agentRunning(m) {
		stopped.Error = hostagent.LastError(m.EventsPath()) // why the last start failed
		return withImage(m, stopped)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := hostagent.NewClient(m.ControlSocket()).Status(ctx)
	if err != nil {
		stopped.State = "unknown"
		stopped.Error = err.Error()
		return withImage(m, stopped)
	}
	return withImage(m, *st)
}

// stateBroken is the state of a machine whose config cannot be used.
const stateBroken = "broken"

// checkOutputFormat accepts table, json or a Go template; anything else (yaml, a typo) would be
// printed as a constant string once per item.
func checkOutputFormat(format string) error {
	if format == "" || format == "table" || format == "json" || strings.Contains(format, "{{") {
		return nil
	}
	return fmt.Errorf("--format %q: use table, json or a Go template containing {{ }}, such as '{{.Name}}'", format)
}

func printStatus(out io.Writer, format string, st hostagent.Status) error {
	if err := checkOutputFormat(format); err != nil {
		return err
	}
	switch format {
	case "json":
		return printJSON(out, st)
	case "table", "":
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "Name:\t%s\n", st.Name)
		fmt.Fprintf(tw, "State:\t%s\n", st.State)
		fmt.Fprintf(tw, "Driver:\t%s (%s)\n", st.Driver, st.Arch)
		fmt.Fprintf(tw, "Resources:\t%d CPUs, %d MiB memory, %d GiB disk\n", st.CPUs, st.MemoryMiB, st.DiskGiB)
		if st.DockerSocket != "" {
			fmt.Fprintf(tw, "Docker:\t%s (context %s)\n", st.DockerSocket, st.DockerContext)
		}
		if st.GuestMemoryUsedMiB > 0 {
			fmt.Fprintf(tw, "Guest memory used:\t%.0f MiB (MemTotal-MemAvailable %.0f MiB)\n", st.GuestMemoryUsedMiB, st.GuestMemoryUnavailableMiB)
		}
		if len(st.Phases) > 0 {
			var parts []string
			for _, p := range st.Phases {
				parts = append(parts, fmt.Sprintf("%s %.1fs", p.Name, p.Seconds))
			}
			fmt.Fprintf(tw, "Boot:\t%s\n", strings.Join(parts, ", "))
		}
		if st.AutoPause != "" {
			fmt.Fprintf(tw, "Auto-pause:\t%s\n", st.AutoPause)
		}
		if st.Image != nil {
			fmt.Fprintf(tw, "Image:\t%s\n", imageLabel(*st.Image))
		}
		if u := st.Upgrade; u != nil {
			switch u.State {
			case store.UpgradePending:
				fmt.Fprintf(tw, "Upgrade:\tpending: boots to Docker-ready once, or goes back to %s\n", imageLabel(u.From))
			case store.UpgradeRolledBack:
				fmt.Fprintf(tw, "Upgrade:\t%s\n", hostagent.RollbackMessage(u))
			}
		}
		if st.ChannelError != "" {
			fmt.Fprintf(tw, "Channel:\tdown, reconnecting: %s\n", st.ChannelError)
		}
		if st.Error != "" {
			fmt.Fprintf(tw, "Error:\t%s\n", st.Error)
		}
		return tw.Flush()
	}
	return execTemplate(out, format, st)
}

// printJSON writes v as indented JSON: the stable machine-readable output of --format json.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func execTemplate(out io.Writer, format string, v any) error {
	if err := checkOutputFormat(format); err != nil {
		return err
	}
	t, err := template.New("format").Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w (use table, json or a Go template)", err)
	}
	if err := t.Execute(out, v); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	fmt.Fprintln(out)
	return nil
}

func newListCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List machines",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store.Open()
			if err != nil {
				return err
			}
			names, err := s.List()
			if err != nil {
				return err
			}
			if err := checkOutputFormat(format); err != nil {
				return err
			}
			sts := []hostagent.Status{}
			for _, n := range names {
				m, cfg, err := existingMachine(n)
				if err != nil {
					// Shown, not skipped: the user must learn it is there and how to fix it.
					sts = append(sts, hostagent.Status{Name: n, State: stateBroken, Error: err.Error()})
					continue
				}
				sts = append(sts, machineStatus(cmd.Context(), m, cfg))
			}
			return printList(cmd.OutOrStdout(), format, sts)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template applied to each machine")
	return cmd
}

func printList(out io.Writer, format string, sts []hostagent.Status) error {
	switch format {
	case "json":
		return printJSON(out, sts)
	case "table", "":
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tDRIVER\tARCH\tCPUS\tMEMORY\tDISK\tDOCKER CONTEXT")
		for _, s := range sts {
			if s.State == stateBroken {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\n", s.Name, s.State)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%dMiB\t%dGiB\t%s\n", s.Name, s.State, s.Driver, s.Arch, s.CPUs, s.MemoryMiB, s.DiskGiB, hostagent.ContextName(s.Name))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, s := range sts {
			if s.State == stateBroken {
				fmt.Fprintf(out, "\n%s\n", s.Error)
			}
		}
		return nil
	}
	for _, s := range sts {
		if err := execTemplate(out, format, s); err != nil {
			return err
		}
	}
	return nil
}

// withImage adds the image the machine boots and any upgrade, read afresh: the host agent
// records a commit or rollback in the config while it runs.
func withImage(m *store.Machine, st hostagent.Status) hostagent.Status {
	cfg, err := m.LoadConfig()
	if err != nil {
		return st
	}
	if img, err := m.CurrentImage(cfg); err == nil {
		st.Image = &img
	}
	st.Upgrade = cfg.Upgrade
	return st
}
