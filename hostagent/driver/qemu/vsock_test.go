package qemu

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// fakeVsock is a /dev/vhost-vsock where the CIDs in taken belong to other VMs.
type fakeVsock struct {
	taken   map[uint32]bool
	tried   []uint32
	claimed uint32
	closed  bool
}

func (f *fakeVsock) Claim(cid uint32) error {
	f.tried = append(f.tried, cid)
	if f.taken[cid] || cid < minGuestCID || cid > maxGuestCID {
		return syscall.EADDRINUSE
	}
	f.claimed = cid
	return nil
}
func (f *fakeVsock) File() *os.File { return nil }
func (f *fakeVsock) Close() error   { f.closed = true; return nil }

func TestChooseVsock(t *testing.T) {
	const seed = "/home/u/.machine/default"
	first := firstCID(seed)
	allTaken := map[uint32]bool{}
	for i, c := 0, first; i < vsockTries; i, c = i+1, nextCID(c) {
		allTaken[c] = true
	}
	for _, tc := range []struct {
		name    string
		accel   string
		openErr error
		taken   map[uint32]bool
		wantCID uint32
		why     string
		opened  bool
	}{
		{name: "kvm, the machine's own CID is free", accel: AccelKVM, wantCID: first, why: "vsock (guest CID", opened: true},
		{name: "kvm, another VM holds it: the next", accel: AccelKVM, taken: map[uint32]bool{first: true}, wantCID: nextCID(first), opened: true},
		{name: "kvm, every candidate held", accel: AccelKVM, taken: allTaken, why: "no free guest CID in 32 tries", opened: true},
		{name: "kvm, no device", accel: AccelKVM, openErr: os.ErrNotExist, why: "vsock: file does not exist"},
		{name: "kvm, device not ours", accel: AccelKVM, openErr: os.ErrPermission, why: "permission denied"},
		{name: "tcg keeps the serial channel", accel: AccelTCG, why: "vsock needs KVM (accelerator tcg)"},
		{name: "hvf keeps the serial channel", accel: AccelHVF, why: "needs KVM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := &fakeVsock{taken: tc.taken}
			opened := false
			open := func() (vsockDevice, error) {
				opened = true
				if tc.openErr != nil {
					return nil, tc.openErr
				}
				return dev, nil
			}
			cid, got, why := chooseVsock(tc.accel, open, seed)
			if cid != tc.wantCID {
				t.Errorf("cid %d, want %d (%s)", cid, tc.wantCID, why)
			}
			if !strings.Contains(why, tc.why) {
				t.Errorf("why %q, want it to say %q", why, tc.why)
			}
			if opened != (tc.opened || tc.openErr != nil) {
				t.Errorf("device opened: %v", opened)
			}
			if tc.wantCID != 0 {
				if got == nil || dev.claimed != cid || dev.closed {
					t.Errorf("device %v claimed %d closed %v: want it open, holding %d", got, dev.claimed, dev.closed, cid)
				}
			} else {
				if got != nil {
					t.Errorf("a device was returned without a CID")
				}
				if tc.opened && !dev.closed {
					t.Error("the device was left open after no CID could be claimed")
				}
			}
		})
	}
}

func TestGuestCIDsStayInRange(t *testing.T) {
	for _, seed := range []string{"", "a", "/m/default", strings.Repeat("x", 300)} {
		if c := firstCID(seed); c < minGuestCID || c > maxGuestCID {
			t.Errorf("firstCID(%q) = %d, outside %d..%d", seed, c, minGuestCID, maxGuestCID)
		}
	}
	if firstCID("/m/a") != firstCID("/m/a") {
		t.Error("a machine's first CID is not stable")
	}
	if got := nextCID(maxGuestCID); got != minGuestCID {
		t.Errorf("nextCID(max) = %d, want %d (wrap past the reserved CIDs)", got, minGuestCID)
	}
}
