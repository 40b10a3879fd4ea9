package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// An image upgrade replaces a machine's image folder (kernel, initramfs, root) and never
// touches its data disk. The previous image is kept in image.prev until the new one has
// booted to Docker-ready once (CommitUpgrade); if that boot fails, RollbackUpgrade puts it
// back. Every step is a rename or an atomic config write, and the config's Upgrade record is
// written before the folders move, so after a crash at any point RecoverUpgrade can finish
// or undo the step and leave a bootable image folder.
//
// Folders in a machine directory:
//
//	image/        what the machine boots
//	image.prev/   the last image that booted, kept while an upgrade is pending
//	image.next/   a staged new image, before it is swapped in
//	image.failed/ the image a rollback removes, for the instant it takes

// Upgrade states.
const (
	// UpgradePending: the new image is in image/ and the previous one in image.prev/, until
	// the new one boots to Docker-ready.
	UpgradePending = "pending"
	// UpgradeRolledBack: the new image failed its first boot; the previous one is back in
	// image/. The record stays for `machine status` until the next upgrade.
	UpgradeRolledBack = "rolled-back"
)

// ErrSameImage is returned by InstallImage when the machine already boots that image.
var ErrSameImage = errors.New("the machine already boots this image")

// ErrNoPrevious is returned by RollbackUpgrade when no previous image is kept.
var ErrNoPrevious = errors.New("no previous image kept")

// ImageInfo names an image a machine boots.
type ImageInfo struct {
	// Source is the folder the files were copied from; Ref and Digest the registry
	// reference and OCI digest, when known.
	Source string `json:"source,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
	// Manifest is the sha256 of the image's manifest.json, which records every file's
	// sha256: it tells which image a folder holds.
	Manifest string `json:"manifest"`
}

// Upgrade is an image upgrade that has not yet proven itself by a boot, or one that was
// rolled back. JSON field names are an API (`machine status --format json`).
type Upgrade struct {
	State   string    `json:"state"`
	From    ImageInfo `json:"from"`
	To      ImageInfo `json:"to"`
	Started time.Time `json:"started"`
	// Set when the upgrade was rolled back: the boot phase the new image reached last and
	// what went wrong.
	FailedPhase string     `json:"failed_phase,omitempty"`
	Error       string     `json:"error,omitempty"`
	RolledBack  *time.Time `json:"rolled_back,omitempty"`
}

// Pending reports whether c has an upgrade waiting for its first good boot.
func (c *Config) Pending() bool { return c.Upgrade != nil && c.Upgrade.State == UpgradePending }

func (m *Machine) prevImageDir() string   { return m.ImageDir() + ".prev" }
func (m *Machine) nextImageDir() string   { return m.ImageDir() + ".next" }
func (m *Machine) failedImageDir() string { return m.ImageDir() + ".failed" }

// upgradeStep is called with the name of each step before it runs; tests make it fail to
// simulate a crash at that point.
var upgradeStep = func(string) error { return nil }

// CurrentImage describes the image in image/ as c records it.
func (m *Machine) CurrentImage(c *Config) (ImageInfo, error) {
	id, err := manifestID(m.ImageDir())
	if err != nil {
		return ImageInfo{}, fmt.Errorf("machine %q: image: %w", m.Name, err)
	}
	return ImageInfo{Source: c.ImageSource, Ref: c.ImageRef, Digest: c.ImageDigest, Manifest: id}, nil
}

// InstallImage copies the image folder src into the machine and swaps it in as image/,
// keeping the image that last booted in image.prev/ and recording a pending upgrade in c.
// to names src (Manifest is filled in). The machine must be stopped and its start lock
// held. An image installed by an earlier upgrade that never booted is replaced, and the
// image kept from before it stays the one to go back to.
func (m *Machine) InstallImage(c *Config, src string, to ImageInfo) error {
	if err := m.RecoverUpgrade(c); err != nil {
		return err
	}
	cur, err := m.CurrentImage(c)
	if err != nil {
		return err
	}
	if to.Manifest, err = manifestID(src); err != nil {
		return fmt.Errorf("image %s: %w", src, err)
	}
	if to.Manifest == cur.Manifest {
		return fmt.Errorf("machine %q: %w (%s)", m.Name, ErrSameImage, describe(cur))
	}
	from, replacing := cur, c.Pending()
	if replacing {
		from = c.Upgrade.From
	}
	if err := upgradeStep("stage"); err != nil {
		return err
	}
	next := m.nextImageDir()
	if err := os.RemoveAll(next); err != nil {
		return fmt.Errorf("machine %q: %w", m.Name, err)
	}
	if err := copyImage(src, next); err != nil {
		return fmt.Errorf("machine %q: copy image from %s: %w", m.Name, src, err)
	}
	if got, err := manifestID(next); err != nil || got != to.Manifest {
		os.RemoveAll(next)
		return fmt.Errorf("machine %q: image %s changed while it was copied; try again", m.Name, src)
	}
	if err := upgradeStep("record"); err != nil {
		return err
	}
	old := *c
	c.Upgrade = &Upgrade{State: UpgradePending, From: from, To: to, Started: time.Now().UTC()}
	c.ImageSource, c.ImageRef, c.ImageDigest = to.Source, to.Ref, to.Digest
	if err := m.SaveConfig(c); err != nil {
		*c = old
		os.RemoveAll(next)
		return fmt.Errorf("machine %q: %w", m.Name, err)
	}
	return m.swapIn(replacing)
}

// swapIn moves image.next/ to image/. The image it replaces becomes image.prev/, unless it
// never booted (replacing): then the kept image.prev/ stays and it is dropped.
func (m *Machine) swapIn(replacing bool) error {
	if err := upgradeStep("set-aside"); err != nil {
		return err
	}
	if exists(m.ImageDir()) {
		var err error
		if replacing && exists(m.prevImageDir()) {
			err = os.RemoveAll(m.ImageDir())
		} else {
			os.RemoveAll(m.prevImageDir()) // a stale copy from a finished upgrade
			err = os.Rename(m.ImageDir(), m.prevImageDir())
		}
		if err != nil {
			return fmt.Errorf("machine %q: set the old image aside: %w", m.Name, err)
		}
	}
	if err := upgradeStep("swap"); err != nil {
		return err
	}
	if err := os.Rename(m.nextImageDir(), m.ImageDir()); err != nil {
		return fmt.Errorf("machine %q: install the new image: %w", m.Name, err)
	}
	return nil
}

// CommitUpgrade records that the pending upgrade's image booted to Docker-ready and drops
// the previous image. It does nothing when no upgrade is pending.
func (m *Machine) CommitUpgrade(c *Config) error {
	if !c.Pending() {
		return nil
	}
	if err := upgradeStep("commit"); err != nil {
		return err
	}
	up := c.Upgrade
	c.Upgrade = nil
	if err := m.SaveConfig(c); err != nil {
		c.Upgrade = up
		return fmt.Errorf("machine %q: %w", m.Name, err)
	}
	if err := upgradeStep("drop-prev"); err != nil {
		return err
	}
	return os.RemoveAll(m.prevImageDir())
}

// RollbackUpgrade puts the previous image back after the pending upgrade's image failed its
// first boot at phase, and records why. The VM must not be running.
func (m *Machine) RollbackUpgrade(c *Config, phase, reason string) error {
	if !c.Pending() {
		return nil
	}
	if !exists(m.prevImageDir()) {
		return fmt.Errorf("machine %q: cannot roll back: %w", m.Name, ErrNoPrevious)
	}
	if err := upgradeStep("record-rollback"); err != nil {
		return err
	}
	old := *c
	up := *c.Upgrade
	now := time.Now().UTC()
	up.State, up.FailedPhase, up.Error, up.RolledBack = UpgradeRolledBack, phase, reason, &now
	c.Upgrade = &up
	c.ImageSource, c.ImageRef, c.ImageDigest = up.From.Source, up.From.Ref, up.From.Digest
	if err := m.SaveConfig(c); err != nil {
		*c = old
		return fmt.Errorf("machine %q: %w", m.Name, err)
	}
	return m.restorePrev()
}

// restorePrev moves image.prev/ back to image/, the failed image out of the way first.
func (m *Machine) restorePrev() error {
	if err := upgradeStep("remove-failed"); err != nil {
		return err
	}
	if exists(m.ImageDir()) {
		os.RemoveAll(m.failedImageDir())
		if err := os.Rename(m.ImageDir(), m.failedImageDir()); err != nil {
			return fmt.Errorf("machine %q: set the failed image aside: %w", m.Name, err)
		}
	}
	if err := upgradeStep("restore"); err != nil {
		return err
	}
	if err := os.Rename(m.prevImageDir(), m.ImageDir()); err != nil {
		return fmt.Errorf("machine %q: restore the previous image: %w", m.Name, err)
	}
	if err := upgradeStep("drop-failed"); err != nil {
		return err
	}
	return os.RemoveAll(m.failedImageDir())
}

// RecoverUpgrade finishes or undoes whatever an interrupted install, commit or rollback left,
// so that image/ holds the image c says the machine boots. It is idempotent and cheap; call
// it with the start lock held, before booting or upgrading a stopped machine.
func (m *Machine) RecoverUpgrade(c *Config) error {
	os.RemoveAll(m.nextImageDir() + ".tmp") // a partial copy
	var err error
	switch {
	case c.Pending():
		err = m.recoverPending(c)
	case c.Upgrade != nil && c.Upgrade.State == UpgradeRolledBack && exists(m.prevImageDir()):
		err = m.restorePrev() // the rollback was recorded but not finished
	default:
		if !exists(m.ImageDir()) && exists(m.prevImageDir()) {
			err = os.Rename(m.prevImageDir(), m.ImageDir())
		}
	}
	if err != nil {
		return fmt.Errorf("machine %q: recover an interrupted upgrade: %w", m.Name, err)
	}
	if !c.Pending() {
		os.RemoveAll(m.prevImageDir()) // a finished upgrade's kept image
	}
	os.RemoveAll(m.nextImageDir()) // staged but never recorded
	os.RemoveAll(m.failedImageDir())
	return nil
}

func (m *Machine) recoverPending(c *Config) error {
	next := m.nextImageDir()
	if exists(next) {
		if id, err := manifestID(next); err == nil && id == c.Upgrade.To.Manifest {
			// Recorded but not swapped in: finish the swap.
			return m.swapIn(exists(m.prevImageDir()))
		}
		return nil // a later upgrade's staging: dropped by the caller
	}
	if !exists(m.ImageDir()) && exists(m.prevImageDir()) {
		// Nothing to boot but the old image: treat the upgrade as failed.
		return m.RollbackUpgrade(c, "install", "the new image was lost while it was installed")
	}
	return nil
}

func describe(i ImageInfo) string {
	name := i.Ref
	if name == "" {
		name = i.Source
	}
	if i.Digest != "" {
		return name + " " + i.Digest
	}
	return name
}

// manifestID is "sha256:" and the hex sha256 of dir's manifest.json.
func manifestID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
