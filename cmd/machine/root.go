package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "machine",
		Short:         "Run Docker on a small Linux VM that feels local",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newCreateCommand(),
		newStartCommand(),
		newStopCommand(),
		newRestartCommand(),
		newStatusCommand(),
		newListCommand(),
		newRmCommand(),
		newLogsCommand(),
		newShellCommand(),
		newDockerEnvCommand(),
		newPortsCommand(),
		newImageCommand(),
		newHostAgentCommand(),
	)
	return root
}

// run executes the CLI and maps errors to exit codes in one place.
func run(ctx context.Context, args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "machine: %v\n", err)
	return 1
}

// exitCoder is an error that carries the process exit status to use (e.g. a command run
// with `machine shell` that failed with status 3). Its message, if any, is already printed.
type exitCoder interface {
	error
	ExitCode() int
}
