package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newPortsCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ports [NAME]",
		Short: "List container ports forwarded to the host, and any that could not be bound",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFormat(format); err != nil {
				return err
			}
			m, _, err := existingMachine(machineName(args))
			if err != nil {
				return err
			}
			c, err := agentClient(m)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			fs, err := c.Ports(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				return printJSON(out, fs)
			case "table", "":
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "HOST ADDRESS\tPROTO\tCONTAINER\tSTATE\tERROR")
				for _, f := range fs {
					fmt.Fprintf(tw, "%s\t%s\t%.12s\t%s\t%s\n", f.HostAddr, f.Proto, f.Container, f.State, f.Error)
				}
				return tw.Flush()
			}
			for _, f := range fs {
				if err := execTemplate(out, format, f); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template applied to each port")
	return cmd
}
