package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/machine-run/machine/guestagent/api"
	"github.com/machine-run/machine/hostagent/guestexec"
)

func newShellCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shell [NAME] [-- CMD ARGS...]",
		Short: "Open a shell in a machine, or run a command there and exit with its status",
		Args:  cobra.ArbitraryArgs, // NAME and the command after --, checked below
		RunE: func(cmd *cobra.Command, args []string) error {
			name, argv := args, []string(nil)
			if at := cmd.ArgsLenAtDash(); at >= 0 {
				name, argv = args[:at], args[at:]
			}
			if len(name) > 1 {
				return fmt.Errorf("too many arguments before --: %q (put the command after --)", name)
			}
			return runShell(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), machineName(name), argv)
		},
	}
	return cmd
}

func runShell(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, name string, argv []string) error {
	m, _, err := existingMachine(name)
	if err != nil {
		return err
	}
	c, err := agentClient(m)
	if err != nil {
		return err
	}
	req := api.ExecRequest{Argv: argv}
	if len(argv) == 0 {
		req.Argv = []string{"/bin/sh", "-l"}
	}
	o := guestexec.Options{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) && len(argv) == 0 {
		req.TTY = true
		req.Env = []string{"TERM=" + envOr("TERM", "xterm-256color")}
		if w, h, err := term.GetSize(int(f.Fd())); err == nil {
			req.Rows, req.Cols = uint16(h), uint16(w)
		}
		old, err := term.MakeRaw(int(f.Fd()))
		if err == nil {
			defer term.Restore(int(f.Fd()), old)
		}
		resize := make(chan guestexec.Size, 1)
		stop := watchResize(f, resize)
		defer stop()
		o.Resize = resize
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := c.DialGuest(dctx, api.ServiceExec)
	cancel()
	if err != nil {
		return fmt.Errorf("machine %q: %w", name, err)
	}
	code, err := guestexec.Run(conn, req, o)
	if err != nil {
		if code != 0 {
			fmt.Fprintf(stderr, "machine: %v\n", err)
			return guestExit{code}
		}
		return fmt.Errorf("machine %q: %w", name, err)
	}
	if code != 0 {
		return guestExit{code}
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
