package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/shares"
	"github.com/machine-run/machine/hostagent/store"
)

type setOptions struct {
	cpus           int
	memory, disk   string
	share, unshare []string
	restart        bool
	timeout        time.Duration
	cpusSet        bool
	anySet         bool // a setting only a stopped machine can change
	// Auto-pause applies at once, to a running machine too.
	autoPause                   bool
	pauseAfter                  time.Duration
	autoPauseSet, pauseAfterSet bool
}

func newSetCommand() *cobra.Command {
	o := &setOptions{}
	cmd := &cobra.Command{
		Use:   "set NAME [--cpus N] [--memory SIZE] [--disk SIZE] [--share PATH[:ro]]... [--unshare PATH]... [--auto-pause=BOOL] [--auto-pause-after DURATION]",
		Short: "Change a machine's CPUs, memory, disk size, shared folders or auto-pause",
		Long: `Change a stopped machine's settings; they apply at its next start.

The disk only grows: the file grows now (sparse), and the guest grows the filesystem at the
next boot without touching what is stored. A running machine is refused unless --restart:
then it is stopped cleanly, changed and started again.

Auto-pause (--auto-pause, --auto-pause-after) changes at once, on a running machine too:
--auto-pause=false resumes a paused machine and keeps it awake.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.cpusSet = cmd.Flags().Changed("cpus")
			for _, f := range []string{"cpus", "memory", "disk", "share", "unshare"} {
				o.anySet = o.anySet || cmd.Flags().Changed(f)
			}
			o.autoPauseSet = cmd.Flags().Changed("auto-pause")
			o.pauseAfterSet = cmd.Flags().Changed("auto-pause-after")
			return runSet(cmd.Context(), cmd.OutOrStdout(), o, args[0])
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.cpus, "cpus", 0, "virtual CPUs")
	f.StringVar(&o.memory, "memory", "", "memory (e.g. 4GiB)")
	f.StringVar(&o.disk, "disk", "", "data disk size; it can only grow")
	f.StringArrayVar(&o.share, "share", nil, "host folder to share, at the same path; PATH:ro shares it read-only (repeatable)")
	f.StringArrayVar(&o.unshare, "unshare", nil, "shared folder to stop sharing (repeatable)")
	f.BoolVar(&o.autoPause, "auto-pause", true, "pause the machine's CPUs while it is idle (no container running, no connection)")
	f.DurationVar(&o.pauseAfter, "auto-pause-after", store.DefaultAutoPauseAfter, "idle time before an auto-pause (turns auto-pause on)")
	f.BoolVar(&o.restart, "restart", false, "stop a running machine cleanly, change it and start it again")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --restart, how long to wait for Docker to be ready")
	return cmd
}

func runSet(ctx context.Context, out io.Writer, o *setOptions, name string) error {
	if !o.anySet && !o.autoPauseSet && !o.pauseAfterSet {
		return usageError{fmt.Errorf("machine set %s: nothing to change: give --cpus, --memory, --disk, --share, --unshare, --auto-pause or --auto-pause-after", name)}
	}
	m, _, err := existingMachine(name)
	if err != nil {
		return err
	}
	if !o.anySet && agentRunning(m) {
		return setAutoPauseLive(ctx, out, m, o)
	}
	wasRunning, err := stopToChange(ctx, out, m, name, o.restart, "its settings change only while it is stopped; ")
	if err != nil {
		return err
	}
	changed, err := applySet(ctx, m, o)
	if err == nil {
		for _, c := range changed {
			fmt.Fprintf(out, "Machine %q: %s\n", name, c)
		}
		if len(changed) == 0 {
			fmt.Fprintf(out, "Machine %q already has these settings\n", name)
		} else if !wasRunning {
			fmt.Fprintf(out, "The changes apply at the next `machine start%s`\n", nameArg(name))
		}
	}
	if wasRunning {
		return errors.Join(err, runStart(ctx, out, &startOptions{timeout: o.timeout}, name))
	}
	return err
}

// applySet changes the stopped machine's config (and grows its disk) under its start lock,
// and says what it changed. Nothing is written unless every setting is valid.
func applySet(ctx context.Context, m *store.Machine, o *setOptions) ([]string, error) {
	lock, err := store.LockContext(ctx, m.StartLock())
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if agentRunning(m) {
		return nil, fmt.Errorf("machine %q was started meanwhile: run the command again with --restart", m.Name)
	}
	cfg, err := m.LoadConfig()
	if err != nil {
		return nil, err
	}
	next := *cfg
	next.Shares = slices.Clone(cfg.Shares)
	next.ReadOnlyShares = slices.Clone(cfg.ReadOnlyShares)
	var changed []string
	if c, err := changeAutoPause(&next, o); err != nil {
		return nil, err
	} else if c != "" {
		changed = append(changed, c)
	}
	if o.cpusSet && o.cpus != cfg.CPUs {
		next.CPUs = o.cpus
		changed = append(changed, fmt.Sprintf("CPUs %d -> %d", cfg.CPUs, o.cpus))
	}
	if o.memory != "" {
		if next.MemoryMiB, err = store.ParseWholeSize(o.memory, 20, "MiB", "4096M or 4G"); err != nil {
			return nil, fmt.Errorf("--memory: %w", err)
		}
		if next.MemoryMiB != cfg.MemoryMiB {
			changed = append(changed, fmt.Sprintf("memory %d MiB -> %d MiB", cfg.MemoryMiB, next.MemoryMiB))
		}
	}
	if o.disk != "" {
		if next.DiskGiB, err = store.ParseWholeSize(o.disk, 30, "GiB", "64G"); err != nil {
			return nil, fmt.Errorf("--disk: %w", err)
		}
		if next.DiskGiB < cfg.DiskGiB {
			return nil, fmt.Errorf("--disk %dGiB: machine %q has a %d GiB disk, and disks only grow: shrinking would cut off blocks its filesystem may use; to start smaller, remove the machine (`machine rm%s`) and create it again", next.DiskGiB, m.Name, cfg.DiskGiB, nameArg(m.Name))
		}
		if next.DiskGiB > cfg.DiskGiB {
			changed = append(changed, fmt.Sprintf("disk %d GiB -> %d GiB (the filesystem grows at the next boot)", cfg.DiskGiB, next.DiskGiB))
		}
	}
	for _, p := range o.unshare {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("--unshare %q: %w", p, err)
		}
		i := slices.Index(next.Shares, abs)
		if i < 0 {
			return nil, fmt.Errorf("--unshare %q: machine %q does not share it (shared: %s)", p, m.Name, strings.Join(cfg.Shares, ", "))
		}
		next.Shares = slices.Delete(next.Shares, i, i+1)
		next.ReadOnlyShares = slices.DeleteFunc(next.ReadOnlyShares, func(s string) bool { return s == abs })
		changed = append(changed, "no longer shares "+abs)
	}
	for _, spec := range o.share {
		abs, ro, err := checkShare(spec)
		if err != nil {
			return nil, err
		}
		wasRO := slices.Contains(next.ReadOnlyShares, abs)
		switch {
		case !slices.Contains(next.Shares, abs):
			next.Shares = append(next.Shares, abs)
			changed = append(changed, "shares "+abs+map[bool]string{true: " (read-only)"}[ro])
		case wasRO != ro:
			changed = append(changed, "shares "+abs+map[bool]string{true: " read-only", false: " writable"}[ro])
		default:
			continue
		}
		next.ReadOnlyShares = slices.DeleteFunc(next.ReadOnlyShares, func(s string) bool { return s == abs })
		if ro {
			next.ReadOnlyShares = append(next.ReadOnlyShares, abs)
		}
	}
	if err := store.ValidateResources(&next, store.Host{CPUs: runtime.NumCPU(), MemoryMiB: hostMemoryMiB()}); err != nil {
		return nil, fmt.Errorf("machine %q: %w", m.Name, err)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	// The disk grows before the config says so: a disk larger than its config boots (the
	// host agent accepts a grown disk), a config larger than its disk does not.
	if next.DiskGiB > cfg.DiskGiB {
		if err := growDisk(m.DataDisk(), int64(next.DiskGiB)<<30); err != nil {
			return nil, fmt.Errorf("machine %q: grow data disk: %w; the machine is unchanged", m.Name, err)
		}
	}
	if err := m.SaveConfig(&next); err != nil {
		return nil, fmt.Errorf("machine %q: save config: %w", m.Name, err)
	}
	return changed, nil
}

// changeAutoPause applies --auto-pause and --auto-pause-after to c and says what changed
// ("" for nothing). --auto-pause-after alone turns auto-pause on.
func changeAutoPause(c *store.Config, o *setOptions) (string, error) {
	if !o.autoPauseSet && !o.pauseAfterSet {
		return "", nil
	}
	was := c.AutoPauseIdle()
	on, after := o.autoPause, o.pauseAfter
	if !o.pauseAfterSet && was > 0 {
		after = was // --auto-pause=true keeps the idle time it had
	}
	if !o.autoPauseSet {
		on = true
	}
	if o.autoPauseSet && !on && o.pauseAfterSet {
		return "", fmt.Errorf("--auto-pause=false with --auto-pause-after %v: give one of them (an idle time turns auto-pause on)", o.pauseAfter)
	}
	if err := c.SetAutoPause(on, after); err != nil {
		return "", err
	}
	if now := c.AutoPauseIdle(); now != was {
		return fmt.Sprintf("auto-pause %s -> %s", hostagent.AutoPauseLabel(was), hostagent.AutoPauseLabel(now)), nil
	}
	return "", nil
}

// setAutoPauseLive changes a running machine's auto-pause: the config first (so the next
// start keeps it), then the host agent, which applies it at once.
func setAutoPauseLive(ctx context.Context, out io.Writer, m *store.Machine, o *setOptions) error {
	lock, err := store.LockContext(ctx, m.StartLock())
	if err != nil {
		return err
	}
	defer lock.Unlock()
	cfg, err := m.LoadConfig()
	if err != nil {
		return err
	}
	next := *cfg
	changed, err := changeAutoPause(&next, o)
	if err != nil {
		return err
	}
	if changed == "" {
		fmt.Fprintf(out, "Machine %q already has these settings\n", m.Name)
		return nil
	}
	if err := m.SaveConfig(&next); err != nil {
		return fmt.Errorf("machine %q: save config: %w", m.Name, err)
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := hostagent.NewClient(m.ControlSocket()).SetAutoPause(actx, next.AutoPauseIdle()); err != nil {
		return fmt.Errorf("machine %q: %s is saved for its next start, but the running machine did not take it: %w", m.Name, changed, err)
	}
	fmt.Fprintf(out, "Machine %q: %s (now)\n", m.Name, changed)
	return nil
}

// checkShare validates a --share PATH[:ro] the way create does.
func checkShare(spec string) (abs string, ro bool, err error) {
	p := spec
	if rest, ok := strings.CutSuffix(spec, ":ro"); ok {
		p, ro = rest, true
	}
	if abs, err = filepath.Abs(p); err != nil {
		return "", false, fmt.Errorf("--share %q: %w", spec, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return "", false, fmt.Errorf("--share %q: not a folder on this host", spec)
	}
	if _, err := shares.CheckGuestPath(runtime.GOOS, abs); err != nil {
		return "", false, fmt.Errorf("--share: %w", err)
	}
	if strings.ContainsAny(abs, `,"`) {
		return "", false, fmt.Errorf("--share %q: folders whose path has a comma or a double quote cannot be shared; share a parent folder", spec)
	}
	return abs, ro, nil
}

// growDisk makes the sparse disk file size bytes long; it never shrinks it.
func growDisk(path string, size int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() >= size {
		return nil
	}
	return os.Truncate(path, size)
}
