package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/vmimage"
	"github.com/machine-run/machine/vmimage/oci"
)

type imagePushOptions struct {
	arch     string
	insecure bool
}

func newImagePushCommand() *cobra.Command {
	var o imagePushOptions
	cmd := &cobra.Command{
		Use:   "push [DIR] REF",
		Short: "Upload a built guest image to a registry",
		Long: "Upload a built guest image to an OCI registry (format: vmimage/oci/FORMAT.md).\n" +
			"DIR is a built image folder; --arch A pushes the newest image built for A; with neither,\n" +
			"every architecture built is pushed, both as one OCI index when amd64 and arm64 are built.\n" +
			"Credentials come from the docker config and its credential helpers (`docker login`).",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImagePush(cmd.Context(), cmd.OutOrStdout(), args, o)
		},
	}
	cmd.Flags().StringVar(&o.arch, "arch", "", "push the newest image built for this architecture (amd64 or arm64)")
	cmd.Flags().BoolVar(&o.insecure, "insecure", false, "allow plain HTTP and unverified TLS to this registry (loopback registries need no flag)")
	return cmd
}

func runImagePush(ctx context.Context, out io.Writer, args []string, o imagePushOptions) error {
	ref := args[len(args)-1]
	var dirs []string
	switch {
	case len(args) == 2 && o.arch != "":
		return errors.New("push: give a folder or --arch, not both")
	case len(args) == 2:
		dirs = []string{args[0]}
	case o.arch != "":
		d, err := vmimage.Latest(o.arch)
		if err != nil {
			return err
		}
		dirs = []string{d}
	default:
		for _, a := range []string{"amd64", "arm64"} {
			d, err := vmimage.Latest(a)
			if errors.Is(err, vmimage.ErrNoImage) {
				continue
			}
			if err != nil {
				return err
			}
			dirs = append(dirs, d)
		}
		if len(dirs) == 0 {
			return fmt.Errorf("push %s: %w built: run `machine image build` or name a folder", ref, vmimage.ErrNoImage)
		}
	}
	r := oci.Remote{Insecure: o.insecure}
	digest, err := r.Push(ctx, ref, dirs...)
	if err != nil {
		return err
	}
	kind := "image"
	if len(dirs) > 1 {
		kind = "index"
	}
	fmt.Fprintf(out, "Pushed %s %s %s\n", ref, kind, digest)
	for _, d := range dirs {
		m, _ := vmimage.Load(d)
		ld, _ := oci.Digest(d)
		fmt.Fprintf(out, "  %s %s  kernel %s, docker %s  (%s)\n", m.Arch, ld, m.KernelRelease, m.Engine.Dockerd, d)
	}
	return nil
}
