package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/machine-run/machine/vmimage"
	"github.com/spf13/cobra"
)

type imageBuildOptions struct {
	arch, output, agent string
	progress            io.Writer
}

func newImageCommand() *cobra.Command {
	image := &cobra.Command{
		Use:   "image",
		Short: "Build, pull, push and manage guest images",
	}
	var opts imageBuildOptions
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the guest image (kernel, initramfs, root) from Debian packages (Linux hosts only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.progress = cmd.ErrOrStderr()
			return runImageBuild(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	defArch := runtime.GOARCH
	if defArch != "arm64" {
		defArch = "amd64"
	}
	build.Flags().StringVar(&opts.arch, "arch", defArch, "guest architecture: amd64 or arm64")
	build.Flags().StringVar(&opts.output, "output", "", "also place the image files in this directory")
	build.Flags().StringVar(&opts.agent, "agent", "", "static guest-agent binary for --arch (default: build ./cmd/machine-guestagent)")
	image.AddCommand(build, newImagePullCommand(), newImagePushCommand(), newImageLsCommand(),
		newImageRmCommand(), newImageExportCommand(), newImageImportCommand())
	return image
}

func runImageBuild(ctx context.Context, out io.Writer, opts imageBuildOptions) error {
	res, err := vmimage.Build(ctx, vmimage.Options{
		Arch:   opts.arch,
		Agent:  opts.agent,
		Output: opts.output,
		Log:    slog.New(slog.NewTextHandler(opts.progress, nil)),
	})
	if err != nil {
		return err
	}
	m := res.Manifest
	cache := "built"
	if res.ImageCached {
		cache = "cached"
	}
	fmt.Fprintf(out, "image %s (%s, %s) in %s\n", m.CacheKey, m.Arch, cache, res.Duration.Round(100*time.Millisecond))
	fmt.Fprintf(out, "  dir      %s\n", res.Dir)
	if opts.output != "" {
		abs, _ := filepath.Abs(opts.output)
		fmt.Fprintf(out, "  output   %s\n", abs)
	}
	fmt.Fprintf(out, "  kernel   %s\n  engine   docker %s, containerd %s, runc %s\n  agent    %s\n",
		m.KernelRelease, m.Engine.Dockerd, m.Engine.Containerd, m.Engine.Runc, m.AgentVersion)
	for _, f := range m.Files {
		fmt.Fprintf(out, "  %-9s %-14s %6.1f MB\n", f.Role, f.Name, float64(f.Size)/1e6)
	}
	return nil
}
