package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/vmimage/oci"
)

type imagePullOptions struct {
	arch     string
	insecure bool
	format   string
}

func newImagePullCommand() *cobra.Command {
	var o imagePullOptions
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Download a guest image from a registry into the image cache",
		Long: "Download a guest image from an OCI registry into the image cache shared by all machines.\n" +
			"A multi-architecture reference resolves to the host's architecture unless --arch says otherwise.\n" +
			"Every blob is verified against its digest as it arrives; an interrupted download resumes.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImagePull(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
		},
	}
	cmd.Flags().StringVar(&o.arch, "arch", oci.HostArch(), "guest architecture: amd64 or arm64")
	cmd.Flags().BoolVar(&o.insecure, "insecure", false, "allow plain HTTP and unverified TLS to this registry (loopback registries need no flag)")
	cmd.Flags().StringVar(&o.format, "format", "table", "output format: table or json")
	return cmd
}

func runImagePull(ctx context.Context, out, progress io.Writer, ref string, o imagePullOptions) error {
	if err := checkFormat(o.format); err != nil {
		return err
	}
	if o.arch != "amd64" && o.arch != "arm64" {
		return fmt.Errorf("--arch %q: choose amd64 or arm64", o.arch)
	}
	c, err := oci.OpenCache()
	if err != nil {
		return err
	}
	began := time.Now()
	img, err := c.Pull(ctx, ref, oci.PullOptions{Remote: oci.Remote{Insecure: o.insecure}, Arch: o.arch, Progress: newPullProgress(progress)})
	if err != nil {
		return err
	}
	took := time.Since(began)
	if o.format == "json" {
		return json.NewEncoder(out).Encode(struct {
			*oci.Image
			Seconds float64 `json:"seconds"`
		}{img, took.Seconds()})
	}
	if img.Cached {
		fmt.Fprintf(out, "%s (%s) is up to date: %s\n", ref, img.Arch, img.Digest)
		return nil
	}
	fmt.Fprintf(out, "Pulled %s (%s) %s: %s in %s (%s/s)\n", ref, img.Arch, img.Digest, mb(img.Downloaded),
		took.Round(10*time.Millisecond), mb(int64(float64(img.Downloaded)/max(took.Seconds(), 1e-3))))
	fmt.Fprintf(out, "  kernel %s, docker %s\n  dir    %s\n", img.Kernel, img.Engine, img.Dir)
	return nil
}

func checkFormat(f string) error {
	if f != "table" && f != "json" {
		return fmt.Errorf("--format %q: choose table or json", f)
	}
	return nil
}
