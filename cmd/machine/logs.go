package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func newLogsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [NAME]",
		Short: "Show a machine's host-agent log and serial console (guest kernel and agent)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, _, err := existingMachine(machineName(args))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "==> %s <==\n", m.AgentLog())
			if err := copyFile(out, m.AgentLog()); err != nil {
				return err
			}
			fmt.Fprintf(out, "\n==> %s <==\n", m.SerialLog())
			if !follow {
				return copyFile(out, m.SerialLog())
			}
			return followFile(cmd.Context(), out, m.SerialLog())
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing the serial console as it grows")
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
