package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent/socketlink"
)

func newSocketCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "socket",
		Short: "Point /var/run/docker.sock at a machine, or undo it",
	}
	var target string
	link := &cobra.Command{
		Use:   "link [NAME]",
		Short: "Make /var/run/docker.sock a symlink to the machine's Docker socket (needs root)",
		Long: `Make /var/run/docker.sock a symlink to the machine's Docker socket, for tools that
know neither docker contexts nor DOCKER_HOST. Writing /var/run needs root. A socket that
another engine answers on is never replaced; a stale one (nothing answers) is.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSocketLink(cmd.OutOrStdout(), machineName(args), target)
		},
	}
	unlink := &cobra.Command{
		Use:   "unlink [NAME]",
		Short: "Remove /var/run/docker.sock if it is the machine's link",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSocketUnlink(cmd.OutOrStdout(), machineName(args), target)
		},
	}
	for _, c := range []*cobra.Command{link, unlink} {
		c.Flags().StringVar(&target, "target", socketlink.DefaultTarget, "TESTS ONLY: the path to link")
		c.Flags().MarkHidden("target")
	}
	cmd.AddCommand(link, unlink)
	return cmd
}

func errNoSocketLink() error {
	return errors.New("socket links are for macOS and Linux: on Windows docker reaches the machine through its named pipe and docker context")
}

func runSocketLink(out io.Writer, name, target string) error {
	if runtime.GOOS == "windows" {
		return errNoSocketLink()
	}
	m, _, err := existingMachine(name)
	if err != nil {
		return err
	}
	plan, err := socketlink.Plan(target, m.DockerSocket())
	if err != nil {
		return fmt.Errorf("machine %q: socket link: %w", name, err)
	}
	fmt.Fprintf(out, "Will %s\n", plan)
	if err := socketlink.Link(target, m.DockerSocket()); err != nil {
		return fmt.Errorf("machine %q: socket link: %w", name, err)
	}
	fmt.Fprintf(out, "%s now reaches machine %q (while it runs); undo with `machine socket unlink%s`\n", target, name, nameArg(name))
	return nil
}

func runSocketUnlink(out io.Writer, name, target string) error {
	if runtime.GOOS == "windows" {
		return errNoSocketLink()
	}
	m, _, err := existingMachine(name)
	if err != nil {
		return err
	}
	st, _, err := socketlink.Inspect(target, m.DockerSocket())
	if err != nil {
		return fmt.Errorf("machine %q: socket unlink: %w", name, err)
	}
	if err := socketlink.Unlink(target, m.DockerSocket()); err != nil {
		return fmt.Errorf("machine %q: socket unlink: %w", name, err)
	}
	if st == socketlink.Absent {
		fmt.Fprintf(out, "%s does not exist; nothing to undo\n", target)
		return nil
	}
	fmt.Fprintf(out, "Removed %s (it pointed at machine %q)\n", target, name)
	return nil
}
