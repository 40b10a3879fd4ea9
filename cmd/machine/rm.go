package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [NAME]",
		Aliases: []string{"remove", "delete"},
		Short:   "Delete a machine and its data disk (images and containers in it are lost)",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, m, err := openMachine(machineName(args))
			if err != nil {
				return err
			}
			if _, err := m.LoadConfig(); err != nil {
				// --force removes a broken machine too: its folder is all there is of it.
				if _, statErr := os.Stat(m.Dir); !force || statErr != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			out := cmd.OutOrStdout()
			if agentRunning(m) {
				if !force {
					return fmt.Errorf("machine %q is running: stop it first with `machine stop%s`, or use `machine rm --force %s`", m.Name, nameArg(m.Name), m.Name)
				}
				if err := runStop(cmd.Context(), out, m, true); err != nil {
					return err
				}
			} else if o, err := endOrphanQEMU(cmd.Context(), m, true); err != nil {
				return err // its data disk is still in use
			} else if o != nil {
				fmt.Fprintf(out, "Machine %q stopped (%s)\n", m.Name, orphanText(o))
			}
			if err := removeDockerContext(m); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			if err := os.RemoveAll(m.Dir); err != nil {
				return fmt.Errorf("machine %q: remove %s: %w", m.Name, m.Dir, err)
			}
			fmt.Fprintf(out, "Removed machine %q\n", m.Name)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop a running machine (power off) before removing it")
	return cmd
}
