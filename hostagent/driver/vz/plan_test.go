package vz

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/hostagent/driver"
)

func planConfig() driver.Config {
	return driver.Config{
		Name: "default", Dir: "/Users/me/.machine/default", Arch: "arm64", CPUs: 4, MemoryMiB: 4096,
		Kernel: "/img/kernel", Initrd: "/img/initramfs.img", RootImage: "/img/root.img",
		DataDisk: "/Users/me/.machine/default/data.raw", SerialLog: "/Users/me/.machine/default/serial.log",
		Cmdline:  "softlockup_panic=1 panic=-1 rootfstype=squashfs",
		BootTime: time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC),
	}
}

func TestPlanDevices(t *testing.T) {
	p, err := NewPlan(planConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kernel != "/img/kernel" || p.Initrd != "/img/initramfs.img" || p.CPUs != 4 || p.MemoryBytes != 4<<30 {
		t.Errorf("boot loader / resources: %+v", p)
	}
	wantDisks := []Disk{
		{ID: "machine-root", Path: "/img/root.img", ReadOnly: true, Caching: CachingCached, Sync: SyncFsync},
		{ID: "machine-data", Path: "/Users/me/.machine/default/data.raw", Caching: CachingCached, Sync: SyncFsync},
	}
	if !reflect.DeepEqual(p.Disks, wantDisks) {
		t.Errorf("disks = %+v\nwant %+v (root read-only first, cached caching, fsync sync: never automatic)", p.Disks, wantDisks)
	}
	if p.Network.Mode != NetworkNAT || !bytes.Equal(p.Network.MAC, macForName("default")) {
		t.Errorf("network = %+v, want NAT with the machine's stable MAC", p.Network)
	}
	if f := p.ForwardNIC; f == nil || f.MAC.String() != bootparams.ForwardNICMAC || f.MTU != bootparams.ForwardNICMTU || !strings.Contains(" "+p.Cmdline+" ", " machine.fwdnic=on ") {
		t.Errorf("forwarding NIC %+v, command line %q: want the contract's MAC and MTU, and the guest told", p.ForwardNIC, p.Cmdline)
	}
	if !p.Vsock || !p.Entropy || !p.Balloon || p.SerialLog != "/Users/me/.machine/default/serial.log" {
		t.Errorf("vsock %v entropy %v balloon %v serial %q", p.Vsock, p.Entropy, p.Balloon, p.SerialLog)
	}
	if p.Shares != nil || p.Rosetta != nil {
		t.Errorf("shares %v rosetta %v, want none", p.Shares, p.Rosetta)
	}
}

func TestPlanMACStable(t *testing.T) {
	a, _ := NewPlan(planConfig(), Options{})
	b, _ := NewPlan(planConfig(), Options{})
	other := planConfig()
	other.Name = "other"
	c, _ := NewPlan(other, Options{})
	if !bytes.Equal(a.Network.MAC, b.Network.MAC) || bytes.Equal(a.Network.MAC, c.Network.MAC) {
		t.Errorf("MACs %v %v %v: want the same per name and different across names", a.Network.MAC, b.Network.MAC, c.Network.MAC)
	}
}

func TestPlanSharesAndRosetta(t *testing.T) {
	for _, tc := range []struct {
		name       string
		shares     []driver.Share
		rosetta    *driver.Rosetta
		wantShares []Share
		wantRos    *RosettaShare
		inCmdline  []string
	}{
		{
			name:       "home folder",
			shares:     []driver.Share{{Tag: "share0", HostPath: "/Users/me", GuestPath: "/Users/me"}},
			wantShares: []Share{{Tag: "share0", HostPath: "/Users/me"}},
			inCmdline:  []string{"machine.shares=share0=/Users/me", "machine.hostname=default"},
		},
		{
			name: "spaces and read-only",
			shares: []driver.Share{
				{Tag: "share0", HostPath: "/Users/Ann Lee", GuestPath: "/Users/Ann Lee"},
				{Tag: "share1", HostPath: "/Volumes/Data", GuestPath: "/Volumes/Data", ReadOnly: true},
			},
			wantShares: []Share{{Tag: "share0", HostPath: "/Users/Ann Lee"}, {Tag: "share1", HostPath: "/Volumes/Data", ReadOnly: true}},
			inCmdline:  []string{`machine.shares="share0=/Users/Ann Lee,share1=/Volumes/Data:ro"`},
		},
		{
			name:      "rosetta",
			rosetta:   &driver.Rosetta{},
			wantRos:   &RosettaShare{Tag: bootparams.RosettaTag},
			inCmdline: []string{"machine.rosetta=" + bootparams.RosettaTag + "=" + bootparams.RosettaMountPoint},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := planConfig()
			cfg.Shares, cfg.Rosetta = tc.shares, tc.rosetta
			p, err := NewPlan(cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Shares, tc.wantShares) || !reflect.DeepEqual(p.Rosetta, tc.wantRos) {
				t.Errorf("shares %+v rosetta %+v, want %+v %+v", p.Shares, p.Rosetta, tc.wantShares, tc.wantRos)
			}
			for _, w := range tc.inCmdline {
				if !strings.Contains(p.Cmdline, w) {
					t.Errorf("command line %q lacks %q", p.Cmdline, w)
				}
			}
		})
	}
}

func TestPlanCmdline(t *testing.T) {
	p, err := NewPlan(planConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := bootparams.Decode(p.Cmdline)
	if err != nil {
		t.Fatalf("the guest cannot read %q: %v", p.Cmdline, err)
	}
	want := bootparams.Params{
		Kernel: []string{"softlockup_panic=1", "panic=-1"}, RootFSType: "squashfs",
		Console: "hvc0", Root: "/dev/vda", Data: "/dev/vdb",
		Channel: bootparams.ChannelVsock, Net: bootparams.NetDHCP, ForwardNIC: true, Hostname: "default",
		Time: time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %q =\n %#v\nwant\n %#v", p.Cmdline, got, want)
	}
}

func TestPlanRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*driver.Config)
		want   string
	}{
		"no cpus":               {func(c *driver.Config) { c.CPUs = 0 }, "at least 1 CPU"},
		"tiny memory":           {func(c *driver.Config) { c.MemoryMiB = 64 }, "128 MiB"},
		"no kernel":             {func(c *driver.Config) { c.Kernel = "" }, "no kernel"},
		"no data disk":          {func(c *driver.Config) { c.DataDisk = "" }, "no data disk"},
		"no serial log":         {func(c *driver.Config) { c.SerialLog = "" }, "no serial log"},
		"rosetta on amd64":      {func(c *driver.Config) { c.Arch, c.Rosetta = "amd64", &driver.Rosetta{} }, "arm64 guest"},
		"rosetta from a folder": {func(c *driver.Config) { c.Rosetta = &driver.Rosetta{HostPath: "/tmp/r"} }, "Apple's Rosetta"},
		"tag too long for virtiofs": {func(c *driver.Config) {
			c.Shares = []driver.Share{{Tag: strings.Repeat("t", 37), HostPath: "/x", GuestPath: "/x"}}
		}, "share tag"},
		"bad image command line": {func(c *driver.Config) { c.Cmdline = "machine.net=bridge" }, "image command line"},
	} {
		cfg := planConfig()
		tc.mutate(&cfg)
		if _, err := NewPlan(cfg, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `machine "default"`) {
			t.Errorf("%s: NewPlan error %v, want one naming the machine and %q", name, err, tc.want)
		}
	}
}
