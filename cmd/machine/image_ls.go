package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/vmimage/oci"
)

func newImageLsCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List pulled and imported guest images and the machines that use them",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImageLs(cmd.OutOrStdout(), format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func runImageLs(out io.Writer, format string) error {
	if err := checkFormat(format); err != nil {
		return err
	}
	c, err := oci.OpenCache()
	if err != nil {
		return err
	}
	imgs, err := c.List()
	if err != nil {
		return err
	}
	users, err := machinesByDigest()
	if err != nil {
		return err
	}
	for _, img := range imgs {
		img.Machines = append(img.Machines, users[img.Digest]...)
	}
	if format == "json" {
		if imgs == nil {
			imgs = []*oci.Image{}
		}
		return json.NewEncoder(out).Encode(imgs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REF\tDIGEST\tARCH\tKERNEL\tENGINE\tSIZE\tMACHINES")
	for _, img := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(strings.Join(img.Refs, ", ")), shortDigest(img.Digest),
			img.Arch, img.Kernel, img.Engine, mb(img.Size), orDash(strings.Join(img.Machines, ", ")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// machinesByDigest maps each image digest to the machines that boot it.
func machinesByDigest() (map[string][]string, error) {
	s, err := store.Open()
	if err != nil {
		return nil, err
	}
	names, err := s.List()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, n := range names {
		m, err := s.Machine(n)
		if err != nil {
			continue
		}
		cfg, err := m.LoadConfig()
		if err != nil || cfg.ImageDigest == "" {
			continue
		}
		out[cfg.ImageDigest] = append(out[cfg.ImageDigest], n)
	}
	return out, nil
}
