package main

import (
	"github.com/machine-run/machine/internal/logrotate"
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
			// stderr is this boot's hostagent.log (machine start rotates one per boot).
			log := slog.New(slog.NewTextHandler(&logrotate.Capped{F: os.Stderr, Max: agentLogMax, Head: agentLogHead}, nil))
			return hostagent.Run(cmd.Context(), hostagent.Options{
				Machine: m, Config: cfg, NewDriver: newDriver(cfg), Logger: log,
				FaultInjection: os.Getenv("MACHINE_FAULT_INJECTION") == "1",
			})
		},
	}
}

// The host agent's log of one boot stays under agentLogMax: its first agentLogHead bytes
// and the latest output.
const (
	agentLogMax  = 16 << 20
	agentLogHead = 1 << 20
)
