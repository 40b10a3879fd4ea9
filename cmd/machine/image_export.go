package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/vmimage/oci"
)

func newImageExportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "export REF|DIGEST FILE",
		Short: "Write a cached guest image (every architecture pulled for REF) to an OCI layout tarball",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageExport(cmd.OutOrStdout(), args[0], args[1])
		},
	}
}

func runImageExport(out io.Writer, target, file string) error {
	c, err := oci.OpenCache()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp-")
	if err != nil {
		return fmt.Errorf("export %s: %w", target, err)
	}
	defer os.Remove(tmp.Name())
	err = c.Export(target, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), abs)
	}
	if err != nil {
		return fmt.Errorf("export %s to %s: %w", target, file, err)
	}
	st, _ := os.Stat(abs)
	fmt.Fprintf(out, "Exported %s to %s (%s)\n", target, abs, mb(st.Size()))
	return nil
}
