package dhcp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// bootp builds a BOOTP header (RFC 2131, figure 1) followed by the magic cookie and opts.
func bootp(op byte, yiaddr [4]byte, opts ...byte) []byte {
	b := make([]byte, 236)
	b[0], b[1], b[2] = op, 1, 6                             // op, htype Ethernet, hlen
	copy(b[4:8], []byte{0xde, 0xad, 0xbe, 0xef})            // xid
	copy(b[16:20], yiaddr[:])                               // yiaddr
	copy(b[28:34], []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}) // chaddr
	b = append(b, 99, 130, 83, 99)                          // magic cookie
	return append(b, opts...)
}

// ackFixture is a DHCPACK as vz's NAT (bootpd) sends one: 192.168.64.5/24 for an hour.
var ackFixture = bootp(2, [4]byte{192, 168, 64, 5},
	53, 1, 5, // message type ACK
	54, 4, 192, 168, 64, 1, // server identifier
	51, 4, 0, 0, 0x0e, 0x10, // lease time 3600 s
	1, 4, 255, 255, 255, 0, // subnet mask
	3, 4, 192, 168, 64, 1, // router
	6, 8, 192, 168, 64, 1, 1, 1, 1, 1, // name servers
	255)

func TestFromACKFixture(t *testing.T) {
	m, err := dhcpv4.FromBytes(ackFixture)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l, err := FromACK(m, at)
	if err != nil {
		t.Fatal(err)
	}
	want := Lease{
		Addr:     netip.MustParsePrefix("192.168.64.5/24"),
		Router:   netip.MustParseAddr("192.168.64.1"),
		DNS:      []netip.Addr{netip.MustParseAddr("192.168.64.1"), netip.MustParseAddr("1.1.1.1")},
		Server:   netip.MustParseAddr("192.168.64.1"),
		Duration: time.Hour,
		T1:       30 * time.Minute,
		T2:       time.Hour / 8 * 7,
		Acquired: at,
	}
	if !l.SameConfig(want) || l.Server != want.Server || l.Duration != want.Duration || l.T1 != want.T1 || l.T2 != want.T2 {
		t.Fatalf("lease\n%+v\nwant\n%+v", l, want)
	}
	if got := l.RenewAt(); !got.Equal(at.Add(30 * time.Minute)) {
		t.Errorf("RenewAt %v", got)
	}
	if got := l.ExpiresAt(); !got.Equal(at.Add(time.Hour)) {
		t.Errorf("ExpiresAt %v", got)
	}
	if s := l.String(); !strings.Contains(s, "192.168.64.5/24 via 192.168.64.1") {
		t.Errorf("String %q", s)
	}
}

func TestFromACKRejects(t *testing.T) {
	cases := map[string][]byte{
		"offer, not ack": bootp(2, [4]byte{10, 0, 0, 2}, 53, 1, 2, 1, 4, 255, 0, 0, 0, 255),
		"nak":            bootp(2, [4]byte{}, 53, 1, 6, 54, 4, 10, 0, 0, 1, 255),
		"no yiaddr":      bootp(2, [4]byte{}, 53, 1, 5, 1, 4, 255, 0, 0, 0, 255),
		"no subnet mask": bootp(2, [4]byte{10, 0, 0, 2}, 53, 1, 5, 3, 4, 10, 0, 0, 1, 255),
	}
	for name, b := range cases {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := FromACK(m, time.Now()); !errors.Is(err, ErrNotAck) {
			t.Errorf("%s: err = %v, want ErrNotAck", name, err)
		}
	}
}

// TestFromACKServerTimers: options 58/59 win when sane, an infinite lease never renews.
func TestFromACKServerTimers(t *testing.T) {
	b := bootp(2, [4]byte{10, 0, 0, 2}, 53, 1, 5, 1, 4, 255, 255, 0, 0,
		51, 4, 0, 0, 0, 100, 58, 4, 0, 0, 0, 20, 59, 4, 0, 0, 0, 90, 255)
	m, _ := dhcpv4.FromBytes(b)
	l, err := FromACK(m, time.Unix(0, 0))
	if err != nil || l.T1 != 20*time.Second || l.T2 != 90*time.Second || l.Addr.Bits() != 16 || l.Router.IsValid() || l.DNS != nil {
		t.Fatalf("%+v, %v", l, err)
	}
	inf := bootp(2, [4]byte{10, 0, 0, 2}, 53, 1, 5, 1, 4, 255, 0, 0, 0, 51, 4, 0xff, 0xff, 0xff, 0xff, 255)
	m, _ = dhcpv4.FromBytes(inf)
	if l, err := FromACK(m, time.Now()); err != nil || l.Duration != Forever || !l.RenewAt().IsZero() || !l.ExpiresAt().IsZero() {
		t.Fatalf("infinite: %+v, %v", l, err)
	}
}

func TestTimers(t *testing.T) {
	cases := []struct{ d, t1, t2, w1, w2 time.Duration }{
		{100 * time.Second, 0, 0, 50 * time.Second, 87500 * time.Millisecond},
		{100 * time.Second, 10 * time.Second, 20 * time.Second, 10 * time.Second, 20 * time.Second},
		{100 * time.Second, 60 * time.Second, 0, 60 * time.Second, 87500 * time.Millisecond},
		{100 * time.Second, 95 * time.Second, 0, 50 * time.Second, 87500 * time.Millisecond},  // T1 past T2
		{100 * time.Second, 0, 200 * time.Second, 50 * time.Second, 87500 * time.Millisecond}, // T2 past the lease
		{100 * time.Second, 0, 40 * time.Second, 20 * time.Second, 40 * time.Second},          // default T1 past a short T2
		{time.Second, 0, 0, 500 * time.Millisecond, 875 * time.Millisecond},
	}
	for _, c := range cases {
		if t1, t2 := timers(c.d, c.t1, c.t2); t1 != c.w1 || t2 != c.w2 {
			t.Errorf("timers(%v, %v, %v) = %v, %v; want %v, %v", c.d, c.t1, c.t2, t1, t2, c.w1, c.w2)
		}
	}
}

// TestRequestedOptionsOnTheWire checks the bytes of the options a DISCOVER carries: the
// parameter request list (55) covers 1, 3, 6, 51, 54, 58, 59, and the host name is 12.
func TestRequestedOptionsOnTheWire(t *testing.T) {
	m, err := dhcpv4.NewDiscovery([]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, requestModifiers("dev")...)
	if err != nil {
		t.Fatal(err)
	}
	opts := wireOptions(t, m.ToBytes())
	if got := string(opts[12]); got != "dev" {
		t.Errorf("host name option %q", got)
	}
	if got := opts[53]; !bytes.Equal(got, []byte{1}) {
		t.Errorf("message type % x, want DISCOVER", got)
	}
	list := opts[55]
	for _, code := range []byte{1, 3, 6, 51, 54, 58, 59} {
		if !bytes.Contains(list, []byte{code}) {
			t.Errorf("option %d not requested: % x", code, list)
		}
	}
}

// wireOptions walks the options after the magic cookie as type-length-value bytes.
func wireOptions(t *testing.T, b []byte) map[byte][]byte {
	t.Helper()
	if len(b) < 240 || !bytes.Equal(b[236:240], []byte{99, 130, 83, 99}) {
		t.Fatalf("no magic cookie: % x", b)
	}
	opts := map[byte][]byte{}
	for i := 240; i < len(b); {
		code := b[i]
		if code == 255 {
			return opts
		}
		if code == 0 {
			i++
			continue
		}
		if i+2 > len(b) || i+2+int(b[i+1]) > len(b) {
			t.Fatalf("option %d overruns the packet", code)
		}
		opts[code] = b[i+2 : i+2+int(b[i+1])]
		i += 2 + int(b[i+1])
	}
	t.Fatal("no end option")
	return nil
}
