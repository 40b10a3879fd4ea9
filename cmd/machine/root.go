package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/internal/buildinfo"
	"github.com/machine-run/machine/vmimage"
)

// Exit codes of the machine command. A command run in the guest with `machine shell -- CMD`
// exits with that command's status instead (exitError); nothing else passes another
// program's status through.
const (
	exitOK         = 0
	exitError      = 1 // the command failed; the message says why
	exitUsage      = 2 // unknown command, stray argument or bad flag
	exitTool       = 3 // a host tool (mmdebstrap, mksquashfs, ...) failed; the message shows its output
	exitRolledBack = 4 // an upgraded image failed its first boot; the machine is back on the previous one
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
		newUpgradeCommand(),
		newHostAgentCommand(),
		newVersionCommand(),
		newSetCommand(),
		newSocketCommand(),
	)
	root.Version = buildinfo.Version()
	root.SetVersionTemplate(versionTemplate())
	completeNames(root)
	strictArgs(root)
	return root
}

// run executes the CLI and maps errors to exit codes in one place.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	code := exitCode(err)
	var ee guestExit
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(stderr, "machine: %v\n", err)
	}
	return code
}

// exitCode is the process status for an error returned by a command.
func exitCode(err error) int {
	var ee guestExit
	var te *vmimage.ToolError
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &te):
		return exitTool
	case errors.As(err, new(errRolledBack)):
		return exitRolledBack
	}
	return exitError
}

// usageError is a command line the CLI does not accept.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// strictArgs makes every command reject what it does not understand, so a typo never runs
// or silently prints help with status 0: a command group (one with subcommands and no action
// of its own) errors on an unknown subcommand, naming the valid ones; every command's own
// argument check and flag parsing errors become usage errors. Applied once to the whole tree.
func strictArgs(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args = cobra.ArbitraryArgs
			c.RunE = runGroup
		}
		if c.Name() == "help" && c.Parent() == root {
			c.Args = helpTopic
		}
		if check := c.Args; check != nil { // never nil: TestEveryCommandChecksArgs
			c.Args = func(cmd *cobra.Command, args []string) error {
				err := check(cmd, args)
				if err == nil {
					return nil
				}
				if !strings.Contains(err.Error(), cmd.CommandPath()) {
					err = fmt.Errorf("%s: %w", cmd.CommandPath(), err)
				}
				return usageError{fmt.Errorf("%w (see `%s --help`)", err, cmd.CommandPath())}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// runGroup is the action of a command group: with no arguments it shows the group's help;
// anything else is an unknown subcommand.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageError{fmt.Errorf("%s; valid commands: %s", msg, strings.Join(subcommandNames(cmd), ", "))}
}

// helpTopic accepts `machine help [COMMAND...]` only for commands that exist.
func helpTopic(help *cobra.Command, args []string) error {
	target, rest, err := help.Root().Find(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unknown help topic %q; valid commands: %s", strings.Join(args, " "), strings.Join(subcommandNames(target), ", "))
	}
	return nil
}

// subcommandNames lists the commands a user can run under cmd.
func subcommandNames(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() || c.Name() == "help" {
			names = append(names, c.Name())
		}
	}
	return names
}
