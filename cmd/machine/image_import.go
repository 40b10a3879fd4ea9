package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/vmimage/oci"
)

func newImageImportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Load guest images from an OCI layout tarball (from `machine image export`) into the cache",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageImport(cmd.Context(), cmd.OutOrStdout(), args[0])
		},
	}
}

func runImageImport(ctx context.Context, out io.Writer, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	c, err := oci.OpenCache()
	if err != nil {
		return err
	}
	imgs, err := c.Import(ctx, f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, img := range imgs {
		fmt.Fprintf(out, "Imported %s (%s) %s\n", orDash(strings.Join(img.Refs, ", ")), img.Arch, img.Digest)
	}
	return nil
}
