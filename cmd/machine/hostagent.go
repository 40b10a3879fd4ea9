package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent"
)

// newHostAgentCommand is the hidden daemon `machine start` spawns, one per running machine.
func newHostAgentCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "hostagent NAME",
		Short:  "Run a machine's host agent (started by `machine start`)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, cfg, err := existingMachine(args[0])
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return hostagent.Run(cmd.Context(), hostagent.Options{
				Machine: m, Config: cfg, NewDriver: newDriver(cfg), Logger: log,
				FaultInjection: os.Getenv("MACHINE_FAULT_INJECTION") == "1",
			})
		},
	}
}
