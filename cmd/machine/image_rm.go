package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/vmimage/oci"
)

func newImageRmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm REF|DIGEST",
		Short: "Remove a pulled or imported guest image from the cache (refuses one a machine uses)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageRm(cmd.Context(), cmd.OutOrStdout(), args[0])
		},
	}
}

func runImageRm(ctx context.Context, out io.Writer, target string) error {
	c, err := oci.OpenCache()
	if err != nil {
		return err
	}
	users, err := machinesByDigest()
	if err != nil {
		return err
	}
	gone, err := c.Remove(ctx, target, func(d string) []string { return users[d] })
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		fmt.Fprintf(out, "Untagged %s (its image is still named by another reference)\n", target)
	}
	for _, d := range gone {
		fmt.Fprintf(out, "Removed %s\n", d)
	}
	return nil
}
