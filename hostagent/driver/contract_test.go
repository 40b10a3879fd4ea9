package driver_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api/bootparams"
	"github.com/machine-run/machine/hostagent/driver"
	"github.com/machine-run/machine/hostagent/driver/qemu"
	"github.com/machine-run/machine/hostagent/driver/vz"
)

// TestDriversTellTheGuestTheSame builds the boot parameters of every driver for one machine
// and decodes them with the guest's decoder: the machine-level fields must be identical,
// and each driver's transport must be what that driver declares. A driver that forgot the
// shares or the hostname (as vz once did) fails here.
func TestDriversTellTheGuestTheSame(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  driver.Config
	}{
		{"plain", machineConfig(nil, nil)},
		{"home folder with a space, a read-only share", machineConfig([]driver.Share{
			{Tag: "share0", HostPath: "/Users/Ann Lee", GuestPath: "/Users/Ann Lee"},
			{Tag: "share1", HostPath: "/Volumes/Data", GuestPath: "/Volumes/Data", ReadOnly: true},
		}, nil)},
		{"rosetta", machineConfig([]driver.Share{{Tag: "share0", HostPath: "/Users/me", GuestPath: "/Users/me"}}, &driver.Rosetta{})},
		{"host access off", func() driver.Config { c := machineConfig(nil, nil); c.NoHostAccess = true; return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// QEMU needs a folder to share as Rosetta; vz shares Apple's. Both tell the guest
			// the same tag and mount point.
			qcfg := tc.cfg
			if qcfg.Rosetta != nil {
				qcfg.Rosetta = &driver.Rosetta{HostPath: "/opt/stand-in"}
			}
			drivers := map[string]struct {
				line      string
				transport bootparams.Params
				emulated  bool // TCG: qemu.EmulationKernelWords, and one CPU to boot on (EmulationSMPWords)
			}{
				"qemu linux serial": {qemuAppend(t, qcfg, qemu.Host{OS: "linux", Accel: qemu.AccelTCG, AgentSocket: "/a", QMPSocket: "/q", Token: "00112233445566778899aabbccddeeff", TokenFile: "/t", ForwardNICFD: 3}),
					bootparams.Params{Console: "ttyAMA0", Channel: bootparams.ChannelSerial, Net: bootparams.NetUser, ForwardNIC: true, TokenFrom: bootparams.TokenFwCfg}, true},
				"qemu linux vsock": {qemuAppend(t, qcfg, qemu.Host{OS: "linux", Accel: qemu.AccelKVM, VsockCID: 3, QMPSocket: "/q"}),
					bootparams.Params{Console: "ttyAMA0", Channel: bootparams.ChannelVsock, Net: bootparams.NetUser}, false},
				"qemu windows token": {qemuAppend(t, qcfg, qemu.Host{OS: "windows", Accel: qemu.AccelWHPX, AgentPort: 4444, Token: "00112233445566778899aabbccddeeff", TokenFile: `C:\t`, QMPSocket: `C:\q.sock`}),
					bootparams.Params{Console: "ttyAMA0", Channel: bootparams.ChannelSerial, Net: bootparams.NetUser, TokenFrom: bootparams.TokenFwCfg}, false},
				"vz": {vzCmdline(t, tc.cfg),
					bootparams.Params{Console: "hvc0", Channel: bootparams.ChannelVsock, Net: bootparams.NetDHCP, ForwardNIC: true}, false},
			}
			for name, d := range drivers {
				want := machineLevel(tc.cfg)
				if d.emulated {
					want.Kernel = append(append(want.Kernel, qemu.EmulationKernelWords...), qemu.EmulationSMPWords...)
				}
				got, err := bootparams.Decode(d.line)
				if err != nil {
					t.Fatalf("%s: the guest cannot decode %q: %v", name, d.line, err)
				}
				if m := machinePart(got); !reflect.DeepEqual(m, want) {
					t.Errorf("%s tells the guest\n %#v\nwant\n %#v\n(command line %q)", name, m, want, d.line)
				}
				if tr := transportPart(got); !reflect.DeepEqual(tr, d.transport) {
					t.Errorf("%s transport = %#v, want %#v", name, tr, d.transport)
				}
			}
		})
	}
}

func machineConfig(shares []driver.Share, rosetta *driver.Rosetta) driver.Config {
	return driver.Config{
		Name: "dev", Dir: "/m/dev", Arch: "arm64", CPUs: 2, MemoryMiB: 2048,
		Kernel: "/img/kernel", Initrd: "/img/initramfs.img", RootImage: "/img/root.img",
		DataDisk: "/m/dev/data.raw", SerialLog: "/m/dev/serial.log",
		Cmdline:  "softlockup_panic=1 panic=-1 rootfstype=squashfs",
		BootTime: time.Date(2026, 12, 1, 20, 3, 4, 5, time.UTC),
		Shares:   shares, Rosetta: rosetta,
	}
}

// machineLevel is what every driver must tell the guest for cfg, written out by hand.
func machineLevel(cfg driver.Config) bootparams.Params {
	p := bootparams.Params{
		Kernel: []string{"softlockup_panic=1", "panic=-1"}, RootFSType: "squashfs",
		Root: "/dev/vda", Data: "/dev/vdb", Hostname: cfg.Name, Time: cfg.BootTime,
		NoHostAccess: cfg.NoHostAccess,
	}
	for _, s := range cfg.Shares {
		p.Shares = append(p.Shares, bootparams.Share{Tag: s.Tag, GuestPath: s.GuestPath, ReadOnly: s.ReadOnly})
	}
	if cfg.Rosetta != nil {
		p.Rosetta = &bootparams.Rosetta{Tag: bootparams.RosettaTag, MountPoint: bootparams.RosettaMountPoint}
	}
	return p
}

func machinePart(p bootparams.Params) bootparams.Params {
	p.Console, p.Channel, p.Net, p.Token, p.TokenFrom = "", "", "", "", ""
	p.ForwardNIC = false
	return p
}

func transportPart(p bootparams.Params) bootparams.Params {
	return bootparams.Params{Console: p.Console, Channel: p.Channel, Net: p.Net, ForwardNIC: p.ForwardNIC, Token: p.Token, TokenFrom: p.TokenFrom}
}

func qemuAppend(t *testing.T, cfg driver.Config, host qemu.Host) string {
	t.Helper()
	args, err := qemu.Args(cfg, host)
	if err != nil {
		t.Fatalf("qemu.Args: %v", err)
	}
	var lines []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-append" {
			lines = append(lines, args[i+1])
		}
	}
	if len(lines) != 1 {
		t.Fatalf("qemu: -append given %d times", len(lines))
	}
	return lines[0]
}

func vzCmdline(t *testing.T, cfg driver.Config) string {
	t.Helper()
	p, err := vz.NewPlan(cfg, vz.Options{})
	if err != nil {
		t.Fatalf("vz.NewPlan: %v", err)
	}
	return p.Cmdline
}
