package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/machine-run/machine/internal/logrotate"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func newLogsCommand() *cobra.Command {
	var follow bool
	var boot int
	cmd := &cobra.Command{
		Use:   "logs [NAME]",
		Short: "Show a machine's host-agent log and serial console (guest kernel and agent)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, _, err := existingMachine(machineName(args))
			if err != nil {
				return err
			}
			if boot > 0 || -boot > keptBoots {
				return fmt.Errorf("--boot %d: give 0 (this boot) or -1 to -%d (earlier boots)", boot, keptBoots)
			}
			if boot < 0 && follow {
				return fmt.Errorf("--follow shows the current boot only; drop --boot %d", boot)
			}
			agentLog, serialLog := logrotate.Generation(m.AgentLog(), -boot), logrotate.Generation(m.SerialLog(), -boot)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "==> %s <==\n", agentLog)
			if err := copyFile(out, agentLog); err != nil {
				return err
			}
			fmt.Fprintf(out, "\n==> %s <==\n", serialLog)
			if !follow {
				return copyFile(out, serialLog)
			}
			return followFile(cmd.Context(), out, serialLog)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing the serial console as it grows")
	cmd.Flags().IntVar(&boot, "boot", 0, "which boot's logs: 0 is the current one, -1 the one before (up to -5)")
	return cmd
}

func copyFile(out io.Writer, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(out, "(empty: the machine has not started yet)")
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(out, f)
	return err
}

// followFile prints path and then what is appended to it, until ctx ends (Ctrl-C). A new
// boot truncates the console log; reading then starts again from the top.
func followFile(ctx context.Context, out io.Writer, path string) error {
	var off int64
	for {
		if st, err := os.Stat(path); err == nil {
			if st.Size() < off {
				off = 0
			}
			if st.Size() > off {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				f.Seek(off, io.SeekStart)
				n, _ := io.Copy(out, f)
				f.Close()
				off += n
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
