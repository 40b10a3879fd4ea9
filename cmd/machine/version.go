package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/internal/buildinfo"
	"github.com/machine-run/machine/vmimage"
)

// versions is `machine version --format json`; its field names are an API.
type versions struct {
	CLI       cliVersion    `json:"cli"`
	Machine   string        `json:"machine"`
	HostAgent *agentVersion `json:"host_agent"`
	Image     *imageVersion `json:"image"`
}

type cliVersion struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

type agentVersion struct {
	Running bool   `json:"running"`
	Version string `json:"version,omitempty"`
}

type imageVersion struct {
	Arch       string `json:"arch"`
	Digest     string `json:"digest,omitempty"`
	Kernel     string `json:"kernel"`
	GuestAgent string `json:"guest_agent"`
	Dockerd    string `json:"dockerd"`
	Containerd string `json:"containerd"`
	Runc       string `json:"runc"`
}

func newVersionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:               "version [NAME]",
		Short:             "Show the versions of the CLI, and of a machine's host agent and guest image",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeMachineNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFormat(format); err != nil {
				return err
			}
			return printVersions(cmd.OutOrStdout(), format, collectVersions(cmd.Context(), machineName(args)))
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or a Go template")
	return cmd
}

// collectVersions never fails: what it cannot learn about the machine is left out.
func collectVersions(ctx context.Context, name string) versions {
	v := versions{
		CLI:     cliVersion{Version: buildinfo.Version(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH},
		Machine: name,
	}
	_, m, err := openMachine(name)
	if err != nil || !m.Exists() {
		return v
	}
	v.HostAgent = &agentVersion{}
	if agentRunning(m) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if st, err := hostagent.NewClient(m.ControlSocket()).Status(ctx); err == nil {
			v.HostAgent = &agentVersion{Running: true, Version: st.AgentVersion}
			if st.AgentVersion == "" {
				v.HostAgent.Version = "older than version reporting"
			}
		}
	}
	if img, err := vmimage.Load(m.ImageDir()); err == nil {
		v.Image = &imageVersion{Arch: img.Arch, Kernel: img.KernelRelease, GuestAgent: img.AgentVersion,
			Dockerd: img.Engine.Dockerd, Containerd: img.Engine.Containerd, Runc: img.Engine.Runc}
		if cfg, err := m.LoadConfig(); err == nil {
			v.Image.Digest = cfg.ImageDigest
		}
	}
	return v
}

func printVersions(out io.Writer, format string, v versions) error {
	switch format {
	case "json":
		return printJSON(out, v)
	case "table", "":
	default:
		return execTemplate(out, format, v)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "CLI:\t%s (%s, %s/%s)\n", v.CLI.Version, v.CLI.Go, v.CLI.OS, v.CLI.Arch)
	switch {
	case v.HostAgent == nil:
		fmt.Fprintf(w, "Machine %q:\tdoes not exist\n", v.Machine)
	case v.HostAgent.Running:
		fmt.Fprintf(w, "Host agent (%s):\t%s\n", v.Machine, v.HostAgent.Version)
	default:
		fmt.Fprintf(w, "Host agent (%s):\tnot running\n", v.Machine)
	}
	if im := v.Image; im != nil {
		fmt.Fprintf(w, "Image (%s):\t%s kernel %s, guest agent %s, dockerd %s, containerd %s, runc %s\n",
			v.Machine, im.Arch, im.Kernel, im.GuestAgent, im.Dockerd, im.Containerd, im.Runc)
		if im.Digest != "" {
			fmt.Fprintf(w, "Image digest:\t%s\n", im.Digest)
		}
	}
	return w.Flush()
}

// versionTemplate is what `machine --version` prints: the table of the default machine.
func versionTemplate() string {
	cobra.AddTemplateFunc("machineVersions", func() string {
		var b strings.Builder
		printVersions(&b, "table", collectVersions(context.Background(), store.DefaultName))
		return b.String()
	})
	return "{{machineVersions}}"
}
