package hostagent

import (
	"fmt"
	"time"

	"github.com/machine-run/machine/hostagent/store"
)

// EventUpgrade says what became of a pending image upgrade: its first boot reached Docker
// (committed) or failed and the previous image was put back (rolled back).
const EventUpgrade = "upgrade"

// firstBootTimeout bounds the first boot of an upgraded image: not Docker-ready by then is
// a failed boot, and the previous image comes back.
const firstBootTimeout = 5 * time.Minute

// firstBoot reports whether this boot is the first of a pending upgrade's image.
func (a *Agent) firstBoot() bool { return a.o.Config.Pending() }

// failFirstBoot ends a first boot that cannot succeed (a guest error, the timeout): the VM is
// killed and Run rolls the upgrade back once it is off.
func (a *Agent) failFirstBoot(why string) {
	a.mu.Lock()
	if a.ready || a.bootFailure != "" {
		a.mu.Unlock()
		return
	}
	a.bootFailure = why
	a.mu.Unlock()
	a.requestStop(true)
}

// commitUpgrade runs when Docker answers: a pending upgrade's image has proven itself.
func (a *Agent) commitUpgrade() {
	c := a.o.Config
	if !c.Pending() {
		return
	}
	up := *c.Upgrade
	if err := a.o.Machine.CommitUpgrade(c); err != nil {
		a.emit(Event{Type: EventError, Message: fmt.Sprintf("upgrade: %v", err)})
		return
	}
	a.emit(Event{Type: EventUpgrade, Message: fmt.Sprintf("upgrade committed: image %s booted to Docker-ready; the previous image %s was dropped", imageName(up.To), imageName(up.From))})
}

// rollbackUpgrade puts the previous image back after the first boot of a pending upgrade
// failed; the VM must be off. why says how the boot failed.
func (a *Agent) rollbackUpgrade(why string) {
	c := a.o.Config
	a.mu.Lock()
	ready := a.ready
	phase := "kernel (before the guest agent reported a phase)"
	if n := len(a.phases); n > 0 {
		phase = a.phases[n-1].Name
	}
	a.mu.Unlock()
	if !c.Pending() || ready {
		return
	}
	up := *c.Upgrade
	if err := a.o.Machine.RollbackUpgrade(c, phase, why); err != nil {
		a.emit(Event{Type: EventError, Message: fmt.Sprintf("upgrade: image %s failed its first boot and the rollback failed too: %v", imageName(up.To), err)})
		return
	}
	a.emit(Event{Type: EventUpgrade, Message: RollbackMessage(c.Upgrade)})
}

// RollbackMessage explains a rolled-back upgrade: which image failed, where, and what the
// machine boots now.
func RollbackMessage(u *store.Upgrade) string {
	return fmt.Sprintf("upgrade rolled back: image %s failed its first boot at phase %s: %s; the machine is back on image %s",
		imageName(u.To), u.FailedPhase, u.Error, imageName(u.From))
}

// imageName is how messages name an image: its reference or folder, and digest.
func imageName(i store.ImageInfo) string {
	name := i.Ref
	if name == "" {
		name = i.Source
	}
	if d := i.Digest; d != "" {
		if len(d) > 19 {
			d = d[:19]
		}
		name += " (" + d + ")"
	}
	return name
}
