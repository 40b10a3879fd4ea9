// Package socketlink points a well-known Docker socket path (/var/run/docker.sock) at a
// machine's own socket with a symlink, for tools that know no docker context or DOCKER_HOST,
// and undoes it. It never replaces what it cannot prove dead or its own: a live socket that
// another engine serves, a file, a folder.
package socketlink

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultTarget is where Docker clients look when told nothing.
const DefaultTarget = "/var/run/docker.sock"

// Errors callers branch on.
var (
	// ErrInUse: the target is a live socket that is not the machine's.
	ErrInUse = errors.New("another engine serves it")
	// ErrNotOurs: unlink found something other than the machine's link.
	ErrNotOurs = errors.New("it is not this machine's link")
)

// State is what the target path holds now.
type State int

const (
	Absent     State = iota // nothing there
	Ours                    // a symlink to the machine's socket
	Stale                   // a socket, or a symlink to one, that nothing answers on
	LiveOther               // a socket (or link to one) that answers and is not ours
	NotASocket              // a file, folder or link to one: never touched
)

// Inspect says what target holds, relative to ours (the machine's socket).
func Inspect(target, ours string) (State, string, error) {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return Absent, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	desc := "a socket"
	if fi.Mode()&fs.ModeSymlink != 0 {
		dest, err := os.Readlink(target)
		if err != nil {
			return 0, "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(target), dest)
		}
		if filepath.Clean(dest) == filepath.Clean(ours) {
			return Ours, "a link to " + dest, nil
		}
		desc = "a link to " + dest
		fi, err = os.Stat(target)
		if errors.Is(err, fs.ErrNotExist) {
			return Stale, desc + " (which does not exist)", nil
		}
		if err != nil {
			return 0, "", err
		}
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return NotASocket, desc + fmt.Sprintf(" (%s, not a socket)", fi.Mode().Type()), nil
	}
	c, err := net.DialTimeout("unix", target, 2*time.Second)
	if err != nil {
		return Stale, desc + " that nothing answers on", nil
	}
	c.Close()
	return LiveOther, desc + " that an engine answers on", nil
}

// Plan says what Link will do to target, for the user to read before it happens.
func Plan(target, ours string) (string, error) {
	st, desc, err := Inspect(target, ours)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(target)
	switch st {
	case Absent:
		return fmt.Sprintf("create the symlink %s -> %s (needs write access to %s)", target, ours, dir), nil
	case Ours:
		return fmt.Sprintf("nothing: %s already points at %s", target, ours), nil
	case Stale:
		return fmt.Sprintf("replace %s, %s, with the symlink %s -> %s (needs write access to %s)", target, desc, target, ours, dir), nil
	case LiveOther:
		return "", fmt.Errorf("%s is %s: %w; machine will not take it over: stop that engine first, or use `docker context use` or DOCKER_HOST instead", target, desc, ErrInUse)
	default:
		return "", fmt.Errorf("%s is %s: machine will not replace it; move it away first", target, desc)
	}
}

// Link makes target a symlink to ours, replacing only nothing, a stale socket or a stale
// link; the swap is a rename, so the path is never missing while a live link is replaced.
func Link(target, ours string) error {
	st, desc, err := Inspect(target, ours)
	if err != nil {
		return err
	}
	switch st {
	case Ours:
		return nil
	case LiveOther:
		return fmt.Errorf("%s is %s: %w", target, desc, ErrInUse)
	case NotASocket:
		return fmt.Errorf("%s is %s: machine will not replace it", target, desc)
	}
	tmp := filepath.Join(filepath.Dir(target), fmt.Sprintf(".%s.machine-%d", filepath.Base(target), os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(ours, tmp); err != nil {
		return privilege(err, filepath.Dir(target))
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return privilege(err, filepath.Dir(target))
	}
	return nil
}

// Unlink removes target if it is the symlink to ours, and refuses anything else.
func Unlink(target, ours string) error {
	st, desc, err := Inspect(target, ours)
	if err != nil {
		return err
	}
	switch st {
	case Absent:
		return nil
	case Ours:
		if err := os.Remove(target); err != nil {
			return privilege(err, filepath.Dir(target))
		}
		return nil
	}
	return fmt.Errorf("%s is %s: %w; machine leaves it alone", target, desc, ErrNotOurs)
}

func privilege(err error, dir string) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: changing %s needs write access to it: run the command as root (sudo, keeping MACHINE_HOME if you set it)", err, dir)
	}
	return err
}
