package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Forever is Lease.Duration for an infinite lease (lease time 0xffffffff): never renewed.
const Forever = time.Duration(1<<63 - 1)

// infiniteSeconds is the lease time option's "infinite" value (RFC 2131, 3.3).
const infiniteSeconds = 0xffffffff

// Lease is what a DHCPACK grants, in the form the interface is configured from.
type Lease struct {
	Addr     netip.Prefix  // yiaddr with the subnet mask (option 1) as prefix length
	Router   netip.Addr    // first router (option 3); invalid when the server sent none
	DNS      []netip.Addr  // name servers (option 6)
	Server   netip.Addr    // server identifier (option 54)
	Duration time.Duration // lease time (option 51); Forever when infinite or absent
	T1, T2   time.Duration // renewal and rebinding times (options 58, 59, or 1/2 and 7/8 of Duration)
	Acquired time.Time     // when the ACK arrived; the timers count from here
}

// ErrNotAck is returned (wrapped) by FromACK for a message that is not a usable DHCPACK.
var ErrNotAck = errors.New("not a usable DHCPACK")

// FromACK reads a lease from ack, received at acquired.
func FromACK(ack *dhcpv4.DHCPv4, acquired time.Time) (Lease, error) {
	if ack == nil {
		return Lease{}, fmt.Errorf("dhcp: nil message: %w", ErrNotAck)
	}
	if t := ack.MessageType(); t != dhcpv4.MessageTypeAck {
		return Lease{}, fmt.Errorf("dhcp: message type %s: %w", t, ErrNotAck)
	}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return Lease{}, fmt.Errorf("dhcp: ack has no address (yiaddr %v): %w", ack.YourIPAddr, ErrNotAck)
	}
	mask := ack.SubnetMask()
	ones, bits := mask.Size()
	if mask == nil || bits != 32 || ones == 0 {
		return Lease{}, fmt.Errorf("dhcp: ack for %v has no valid subnet mask (option 1): %w", ip, ErrNotAck)
	}
	l := Lease{Addr: netip.PrefixFrom(ip, ones), Acquired: acquired}
	if rs := ack.Router(); len(rs) > 0 {
		l.Router = addr4(rs[0])
	}
	for _, d := range ack.DNS() {
		if a := addr4(d); a.IsValid() {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Server = addr4(ack.ServerIdentifier())
	l.Duration = Forever
	if d := ack.IPAddressLeaseTime(0); d > 0 && d != infiniteSeconds*time.Second {
		l.Duration = d
	}
	l.T1, l.T2 = timers(l.Duration, ack.IPAddressRenewalTime(0), ack.IPAddressRebindingTime(0))
	return l, nil
}

// timers returns T1 and T2 for a lease of d: the server's values when they are sane
// (0 < T1 < T2 < d), RFC 2131's defaults (0.5 d and 0.875 d) otherwise.
func timers(d, t1, t2 time.Duration) (time.Duration, time.Duration) {
	if d == Forever {
		return Forever, Forever
	}
	if t2 <= 0 || t2 >= d {
		t2 = d / 8 * 7
	}
	if t1 <= 0 || t1 >= t2 {
		t1 = d / 2
		if t1 >= t2 {
			t1 = t2 / 2
		}
	}
	return t1, t2
}

func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// RenewAt is when to ask the server to extend the lease (T1); the zero Time for a lease
// that never needs it.
func (l Lease) RenewAt() time.Time { return l.at(l.T1) }

// RebindAt is when to ask any server instead (T2).
func (l Lease) RebindAt() time.Time { return l.at(l.T2) }

// ExpiresAt is when the address stops being ours.
func (l Lease) ExpiresAt() time.Time { return l.at(l.Duration) }

func (l Lease) at(d time.Duration) time.Time {
	if d == Forever || !l.Addr.IsValid() {
		return time.Time{}
	}
	return l.Acquired.Add(d)
}

// SameConfig reports whether l and o configure the interface identically (timers aside).
func (l Lease) SameConfig(o Lease) bool {
	if l.Addr != o.Addr || l.Router != o.Router || len(l.DNS) != len(o.DNS) {
		return false
	}
	for i := range l.DNS {
		if l.DNS[i] != o.DNS[i] {
			return false
		}
	}
	return true
}

// String is for logs.
func (l Lease) String() string {
	d := "infinite"
	if l.Duration != Forever {
		d = l.Duration.String()
	}
	return fmt.Sprintf("%v via %v dns %v from %v for %s", l.Addr, l.Router, l.DNS, l.Server, d)
}
