package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/store"
	"github.com/machine-run/machine/vmimage"
)

type upgradeOptions struct {
	image   string
	restart bool
	timeout time.Duration
}

func newUpgradeCommand() *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "upgrade [NAME]",
		Short: "Replace a machine's kernel, initramfs and root with another image; the data disk is kept",
		Long: `Replace a machine's guest image (kernel, initramfs, root filesystem) and keep its data disk
(containers, images, volumes) untouched. Without --image it takes the image create would: the
newest built for the machine's architecture, or the default reference.

The previous image is kept until the new one has booted to Docker-ready once. If that first boot
fails (an error, a guest crash or panic, or no Docker within 5 minutes), the previous image is
put back and the failure is reported (which image, at which boot phase); ` + "`machine start`" + ` then
boots the previous image at once. ` + "`machine status`" + ` shows the image and any pending or
rolled-back upgrade.

A running machine is refused unless --restart: then it is stopped cleanly, upgraded and
started, and the command waits for the new image's first boot (exit status 4 when it was
rolled back; the machine then runs the previous image).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpgrade(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, machineName(args))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "the new image: a built image folder or a registry reference (default: as for create)")
	f.BoolVar(&o.restart, "restart", false, "stop a running machine cleanly, upgrade it and start it again")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --restart, how long to wait for Docker to be ready")
	return cmd
}

// errRolledBack is returned when the upgraded image failed its first boot and the previous
// one was put back; its message is hostagent.RollbackMessage.
type errRolledBack struct{ msg string }

func (e errRolledBack) Error() string { return e.msg }

func runUpgrade(ctx context.Context, out, progress io.Writer, o *upgradeOptions, name string) error {
	m, _, err := existingMachine(name)
	if err != nil {
		return err
	}
	wasRunning, err := stopToChange(ctx, out, m, name, o.restart, "")
	if err != nil {
		return err
	}
	if err := installUpgrade(ctx, out, progress, m, o.image); err != nil {
		if errors.Is(err, store.ErrSameImage) {
			fmt.Fprintf(out, "Machine %q already boots this image; nothing to do\n", name)
			err = nil
		}
		if wasRunning {
			return errors.Join(err, runStart(ctx, out, &startOptions{timeout: o.timeout}, name))
		}
		return err
	}
	if !o.restart && !wasRunning {
		fmt.Fprintf(out, "The new image boots at the next `machine start%s`; the previous one is kept until it has booted once\n", nameArg(name))
		return nil
	}
	began := time.Now()
	if err := runStart(ctx, out, &startOptions{timeout: o.timeout}, name); err != nil {
		return err
	}
	cfg, err := m.LoadConfig()
	if err != nil {
		return err
	}
	if u := cfg.Upgrade; u != nil && u.State == store.UpgradeRolledBack && u.RolledBack != nil && u.RolledBack.After(began) {
		return fmt.Errorf("machine %q: %w", name, errRolledBack{hostagent.RollbackMessage(u)})
	}
	fmt.Fprintf(out, "Machine %q upgraded\n", name)
	return nil
}

// installUpgrade resolves the image and swaps it into the stopped machine, under its start
// lock.
func installUpgrade(ctx context.Context, out, progress io.Writer, m *store.Machine, image string) error {
	lock, err := store.LockContext(ctx, m.StartLock())
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if agentRunning(m) {
		return fmt.Errorf("machine %q was started meanwhile: run the upgrade again with --restart", m.Name)
	}
	cfg, err := m.LoadConfig()
	if err != nil {
		return err
	}
	img, err := resolveImage(ctx, image, cfg.Arch, progress)
	if err != nil {
		return err
	}
	man, err := vmimage.Load(img.Dir)
	if err != nil {
		return err
	}
	if err := man.Verify(img.Dir); err != nil {
		return fmt.Errorf("image %s: %w", img.Dir, err)
	}
	to := store.ImageInfo{Source: img.Dir, Ref: img.Ref, Digest: img.Digest}
	from, _ := m.CurrentImage(cfg)
	if err := m.InstallImage(cfg, img.Dir, to); err != nil {
		return err
	}
	fmt.Fprintf(out, "Installed image %s on machine %q (was %s); its data disk is unchanged\n",
		imageLabel(to), m.Name, imageLabel(from))
	return nil
}

func imageLabel(i store.ImageInfo) string {
	name := i.Ref
	if name == "" {
		name = i.Source
	}
	if i.Digest != "" {
		return name + " " + shortDigest(i.Digest)
	}
	return name
}

// bootAfterRollback runs after a failed first boot of an upgraded image: once the host agent
// has put the previous image back and exited, it says so and boots the previous image.
// Any other failure is returned as it was.
func bootAfterRollback(ctx context.Context, out io.Writer, m *store.Machine, agentDone chan error, began time.Time, bootErr error) error {
	select {
	case <-agentDone:
	case <-time.After(2 * time.Minute):
	case <-ctx.Done():
	}
	for end := time.Now().Add(30 * time.Second); agentRunning(m) && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	cfg, err := m.LoadConfig()
	if err != nil {
		return errors.Join(bootErr, err)
	}
	u := cfg.Upgrade
	if u == nil || u.State != store.UpgradeRolledBack || agentRunning(m) {
		return bootErr
	}
	fmt.Fprintf(out, "%s\nStarting machine %q on the previous image\n", hostagent.RollbackMessage(u), m.Name)
	done := make(chan error, 1)
	if err := launchAgent(out, m, cfg, done); err != nil {
		return err
	}
	return followStart(ctx, out, m, done, began)
}
