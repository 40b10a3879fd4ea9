package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent/shares"
	"github.com/machine-run/machine/hostagent/store"
)

type createOptions struct {
	cpus       int
	memory     string
	disk       string
	arch       string
	image      string
	driver     string
	publishAll bool
	hostAccess bool
	hostfwd    []string
	rosetta    bool
	standIn    string
	shares     []string
	autoPause  bool
	pauseAfter time.Duration
	// progress shows a pull of the image, if create has to pull one (stderr).
	progress io.Writer
}

func (o *createOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&o.cpus, "cpus", min(store.DefaultCPUs, runtime.NumCPU()), "virtual CPUs")
	f.StringVar(&o.memory, "memory", fmt.Sprintf("%dMiB", store.DefaultMemoryMiB), "memory (e.g. 2GiB, 4096M)")
	f.StringVar(&o.disk, "disk", fmt.Sprintf("%dGiB", store.DefaultDiskGiB), "data disk size; sparse, it grows as used")
	f.StringVar(&o.arch, "arch", runtime.GOARCH, "guest architecture: amd64 or arm64")
	f.StringVar(&o.image, "image", "", "guest image: a built image folder or a registry reference (default: $MACHINE_IMAGE, settings.json \"image\", the newest built image, then this build's default reference)")
	f.StringVar(&o.driver, "driver", defaultDriver(), "hypervisor driver: qemu or vz (macOS)")
	f.BoolVar(&o.publishAll, "publish-all-interfaces", false, "expose wildcard-published container ports on all host interfaces, not just loopback")
	f.BoolVar(&o.hostAccess, "host-access", true, "let containers reach services on the host's loopback as host.docker.internal (TCP and UDP)")
	home, _ := os.UserHomeDir()
	f.StringSliceVar(&o.shares, "share", shares.DefaultPaths(runtime.GOOS, home), "host folder to mount in the machine at the same path (repeatable; --share= for none)")
	f.BoolVar(&o.autoPause, "auto-pause", true, "pause the machine's CPUs while it is idle (no container running, no connection); the next connection resumes it")
	f.DurationVar(&o.pauseAfter, "auto-pause-after", store.DefaultAutoPauseAfter, "idle time before an auto-pause")
	f.StringSliceVar(&o.hostfwd, "qemu-hostfwd", nil, "QEMU user-network hostfwd rules (benchmarks)")
	f.MarkHidden("qemu-hostfwd")
	f.BoolVar(&o.rosetta, "rosetta", false, "run amd64 Linux programs in an arm64 machine with Apple's Rosetta (vz driver, Apple silicon, macOS 13+)")
	f.StringVar(&o.standIn, "rosetta-stand-in", "", "TESTS ONLY: share DIR/rosetta with a QEMU arm64 guest in Rosetta's place")
	f.MarkHidden("rosetta-stand-in")
}

func newCreateCommand() *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a machine (does not start it)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.progress = cmd.ErrOrStderr()
			m, err := runCreate(cmd.Context(), o, machineName(args))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created machine %q in %s\nStart it with: machine start%s\n", m.Name, m.Dir, nameArg(m.Name))
			return nil
		},
	}
	o.addFlags(cmd)
	return cmd
}

func runCreate(ctx context.Context, o *createOptions, name string) (*store.Machine, error) {
	s, err := store.Open()
	if err != nil {
		return nil, err
	}
	mem, err := store.ParseWholeSize(o.memory, 20, "MiB", "2048M or 2G")
	if err != nil {
		return nil, fmt.Errorf("--memory: %w", err)
	}
	disk, err := store.ParseWholeSize(o.disk, 30, "GiB", "64G")
	if err != nil {
		return nil, fmt.Errorf("--disk: %w", err)
	}
	cfg := &store.Config{
		Name: name, Arch: o.arch, CPUs: o.cpus, MemoryMiB: mem, DiskGiB: disk,
		Driver: o.driver, PublishAllInterfaces: o.publishAll, QEMUHostForwards: o.hostfwd,
		DisableHostAccess: !o.hostAccess,
	}
	if err := cfg.SetAutoPause(o.autoPause, o.pauseAfter); err != nil {
		return nil, err
	}
	for _, p := range o.shares {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("--share %q: %w", p, err)
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--share %q: not a folder on this host", p)
		}
		if _, err := shares.CheckGuestPath(runtime.GOOS, abs); err != nil {
			return nil, fmt.Errorf("--share: %w", err)
		}
		if strings.ContainsAny(abs, `,"`) {
			return nil, fmt.Errorf("--share %q: folders whose path has a comma or a double quote cannot be shared; share a parent folder", p)
		}
		cfg.Shares = append(cfg.Shares, abs)
	}
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	if err := store.ValidateResources(cfg, store.Host{CPUs: runtime.NumCPU(), MemoryMiB: hostMemoryMiB()}); err != nil {
		return nil, fmt.Errorf("machine %q: %w", name, err)
	}
	if o.driver != "qemu" && o.driver != "vz" {
		return nil, fmt.Errorf("--driver %q: choose qemu or vz", o.driver)
	}
	if o.driver == "vz" {
		if err := checkVZ(); err != nil {
			return nil, fmt.Errorf("--driver vz: %w", err)
		}
	}
	if err := checkRosetta(o, runtime.GOOS, runtime.GOARCH); err != nil {
		return nil, err
	}
	cfg.Rosetta = o.rosetta
	if o.standIn != "" {
		if cfg.RosettaStandIn, err = filepath.Abs(o.standIn); err != nil {
			return nil, fmt.Errorf("--rosetta-stand-in: %w", err)
		}
	}
	img, err := resolveImage(ctx, o.image, o.arch, o.progress)
	if err != nil {
		return nil, err
	}
	cfg.ImageDigest, cfg.ImageRef = img.Digest, img.Ref
	return s.Create(cfg, img.Dir)
}

// checkRosetta refuses Rosetta where it cannot work, saying why and what to do. Apple's
// Rosetta for Linux runs only on Apple silicon and only Virtualization.framework (the vz
// driver) can share it, with an arm64 guest. The test-only stand-in is shared by QEMU.
func checkRosetta(o *createOptions, goos, goarch string) error {
	if o.standIn != "" {
		if o.rosetta {
			return fmt.Errorf("--rosetta-stand-in replaces --rosetta: give one of them")
		}
		if o.driver != "qemu" || o.arch != "arm64" {
			return fmt.Errorf("--rosetta-stand-in is shared by the qemu driver with an arm64 guest (have --driver %s --arch %s)", o.driver, o.arch)
		}
		if st, err := os.Stat(filepath.Join(o.standIn, "rosetta")); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("--rosetta-stand-in %q: want a folder holding an executable file named rosetta", o.standIn)
		}
		return nil
	}
	if !o.rosetta {
		return nil
	}
	switch {
	case goos != "darwin" || goarch != "arm64":
		return fmt.Errorf("--rosetta needs a Mac with Apple silicon (Apple's Rosetta for Linux exists nowhere else; this host is %s/%s): drop --rosetta, or use an amd64 machine (--arch amd64) for amd64 images", goos, goarch)
	case o.arch != "arm64":
		return fmt.Errorf("--rosetta runs amd64 programs in an arm64 machine, and this one is %s: use --arch arm64, or drop --rosetta", o.arch)
	case o.driver != "vz":
		return fmt.Errorf("--rosetta needs the vz driver (only Apple's Virtualization.framework can share Rosetta with a guest; have --driver %s): use --driver vz", o.driver)
	}
	return nil
}
