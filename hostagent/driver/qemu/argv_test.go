package qemu

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/machine-run/machine/hostagent/driver"
)

func testConfig(arch string) driver.Config {
	return driver.Config{
		Name: "dev", Dir: "/m/dev", Arch: arch, CPUs: 2, MemoryMiB: 2048,
		Kernel: "/img/kernel", Initrd: "/img/initramfs.img", RootImage: "/img/root.img",
		DataDisk: "/m/dev/data.raw", Cmdline: "panic=-1 machine.root=/dev/vda",
		SerialLog: "/m/dev/serial.log",
	}
}

// argValue returns the value following the n-th occurrence of flag.
func argValues(args []string, flag string) []string {
	var vs []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			vs = append(vs, args[i+1])
		}
	}
	return vs
}

func TestArgs(t *testing.T) {
	tests := []struct {
		name    string
		arch    string
		host    Host
		machine string
		accels  []string
		cpu     string
		append  []string // substrings of -append
		devices []string // -device values that must be present
		absent  []string // -device values that must not be present
		netdevs []string // -netdev values that must be present
	}{
		{
			name: "linux tcg amd64 serial channel", arch: "amd64",
			host:    Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/m/dev/agent.sock", QMPSocket: "/m/dev/qmp.sock"},
			machine: "q35", accels: []string{"tcg,tb-size=256,thread=multi"}, cpu: "max",
			append:  []string{"console=ttyS0", "machine.channel=serial", "machine.net=user", "machine.hostname=dev", "panic=-1"},
			devices: []string{"virtio-serial-pci,id=vser0,max_ports=2", "virtserialport,bus=vser0.0,chardev=agent,name=machine.agent"},
			absent:  []string{"vhost-vsock-pci,guest-cid=7", "virtio-net-pci,netdev=fwd"},
		},
		{
			name: "linux tcg amd64 with the forwarding NIC", arch: "amd64",
			host:    Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/m/dev/agent.sock", QMPSocket: "/m/dev/qmp.sock", ForwardNICFD: 3},
			machine: "q35", accels: []string{"tcg,tb-size=256,thread=multi"}, cpu: "max",
			append:  []string{"machine.channel=serial", "machine.net=user", "machine.fwdnic=on"},
			devices: []string{"virtio-net-pci,netdev=net0", "virtio-net-pci,netdev=fwd,mac=52:54:00:6d:66:02,host_mtu=65520"},
			netdevs: []string{"dgram,id=fwd,local.type=fd,local.str=3"},
		},
		{
			name: "linux kvm amd64 vsock and the forwarding NIC after it", arch: "amd64",
			host:    Host{OS: "linux", Accel: AccelKVM, VsockCID: 1234, VsockFD: 3, ForwardNICFD: 4, QMPSocket: "/m/dev/qmp.sock"},
			machine: "q35", accels: []string{"kvm"}, cpu: "host",
			append:  []string{"machine.channel=vsock", "machine.fwdnic=on"},
			devices: []string{"vhost-vsock-pci,guest-cid=1234,vhostfd=3", "virtio-net-pci,netdev=fwd"},
			netdevs: []string{"dgram,id=fwd,local.type=fd,local.str=4"},
		},
		{
			name: "linux kvm amd64 vsock", arch: "amd64",
			host:    Host{OS: "linux", Accel: AccelKVM, VsockCID: 7, QMPSocket: "/m/dev/qmp.sock"},
			machine: "q35", accels: []string{"kvm"}, cpu: "host",
			append:  []string{"machine.channel=vsock"},
			devices: []string{"vhost-vsock-pci,guest-cid=7"},
			absent:  []string{"virtio-serial-pci,id=vser0,max_ports=2"},
		},
		{
			name: "linux kvm amd64 vsock on a claimed device", arch: "amd64",
			host:    Host{OS: "linux", Accel: AccelKVM, VsockCID: 1234, VsockFD: 3, AgentSocket: "/m/dev/agent.sock", QMPSocket: "/m/dev/qmp.sock"},
			machine: "q35", accels: []string{"kvm"}, cpu: "host",
			append:  []string{"machine.channel=vsock"},
			devices: []string{"vhost-vsock-pci,guest-cid=1234,vhostfd=3"},
			absent:  []string{"virtio-serial-pci,id=vser0,max_ports=2", "virtserialport,bus=vser0.0,chardev=agent,name=machine.agent"},
		},
		{
			name: "linux tcg arm64", arch: "arm64",
			host:    Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/a.sock", QMPSocket: "/q.sock"},
			machine: "virt", accels: []string{"tcg,tb-size=256,thread=multi"}, cpu: "max,pauth-impdef=on",
			append: []string{"console=ttyAMA0", "machine.channel=serial"},
		},
		{
			name: "macos hvf arm64", arch: "arm64",
			host:    Host{OS: "darwin", Accel: AccelHVF, AgentSocket: "/a.sock", QMPSocket: "/q.sock"},
			machine: "virt,highmem=on", accels: []string{"hvf"}, cpu: "host",
			append: []string{"console=ttyAMA0"},
		},
		{
			name: "windows whpx falls back to tcg", arch: "amd64",
			host:    Host{OS: "windows", Accel: AccelWHPX, AgentPort: 50123, Token: "00112233445566778899aabbccddeeff", TokenFile: `C:\m\dev\channel.token`, QMPSocket: `C:\m\dev\qmp.sock`},
			machine: "q35", accels: []string{"whpx", "tcg,tb-size=256,thread=multi"}, cpu: "max",
			append:  []string{"console=ttyS0", "machine.channel=serial", "machine.token=fw_cfg:opt/run.machine/token"},
			devices: []string{"virtio-serial-pci,id=vser0,max_ports=2", "virtserialport,bus=vser0.0,chardev=agent,name=machine.agent"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := Args(testConfig(tt.arch), tt.host)
			if err != nil {
				t.Fatal(err)
			}
			if got := argValues(args, "-machine"); len(got) != 1 || got[0] != tt.machine {
				t.Errorf("-machine = %v, want %s", got, tt.machine)
			}
			if got := argValues(args, "-accel"); strings.Join(got, " ") != strings.Join(tt.accels, " ") {
				t.Errorf("-accel = %v, want %v", got, tt.accels)
			}
			if got := argValues(args, "-cpu"); len(got) != 1 || got[0] != tt.cpu {
				t.Errorf("-cpu = %v, want %s", got, tt.cpu)
			}
			app := argValues(args, "-append")
			if len(app) != 1 {
				t.Fatalf("-append given %d times", len(app))
			}
			for _, want := range tt.append {
				if !strings.Contains(" "+app[0]+" ", " "+want+" ") {
					t.Errorf("-append %q lacks %q", app[0], want)
				}
			}
			devs := strings.Join(argValues(args, "-device"), "\n")
			for _, d := range tt.devices {
				if !strings.Contains(devs, d) {
					t.Errorf("devices lack %q:\n%s", d, devs)
				}
			}
			for _, d := range tt.absent {
				if strings.Contains(devs, d) {
					t.Errorf("devices unexpectedly have %q", d)
				}
			}
			netdevs := strings.Join(argValues(args, "-netdev"), "\n")
			for _, n := range tt.netdevs {
				if !strings.Contains(netdevs, n) {
					t.Errorf("netdevs lack %q:\n%s", n, netdevs)
				}
			}
			if tt.host.ForwardNICFD == 0 && strings.Contains(" "+app[0]+" ", " machine.fwdnic=on ") {
				t.Errorf("-append %q tells the guest of a forwarding NIC it does not have", app[0])
			}
			if !strings.Contains(devs, "virtio-balloon-pci,free-page-reporting=on") {
				t.Errorf("the balloon does not report free pages (memory a container freed would stay with QEMU):\n%s", devs)
			}
			if !strings.Contains(strings.Join(args, " "), "-no-reboot") {
				t.Error("missing -no-reboot: a panicking guest would reboot instead of exiting")
			}
		})
	}
}

func TestArgsDisks(t *testing.T) {
	cfg := testConfig("amd64")
	cfg.DataDisk = "/m/with,comma/data.raw"
	args, err := Args(cfg, Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/a", QMPSocket: "/q"})
	if err != nil {
		t.Fatal(err)
	}
	drives := argValues(args, "-drive")
	if len(drives) != 2 {
		t.Fatalf("want 2 drives, got %v", drives)
	}
	if !strings.Contains(drives[0], "readonly=on") || !strings.HasSuffix(drives[0], "file=/img/root.img") {
		t.Errorf("root drive %q must be read-only and first (it is /dev/vda)", drives[0])
	}
	if strings.Contains(drives[1], "readonly") || !strings.Contains(drives[1], "cache=writeback") {
		t.Errorf("data drive %q must be writable with flushes passed through", drives[1])
	}
	if !strings.HasSuffix(drives[1], "file=/m/with,,comma/data.raw") {
		t.Errorf("comma in path not escaped: %q", drives[1])
	}
}

func TestArgsBootsTheHostKernelWhenSet(t *testing.T) {
	host := Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/a", QMPSocket: "/q"}
	for _, tc := range []struct{ hostKernel, want string }{
		{"", "/img/kernel"},
		{"/m/dev/kernel-pvh-0123.elf", "/m/dev/kernel-pvh-0123.elf"},
	} {
		host.Kernel = tc.hostKernel
		args, err := Args(testConfig("amd64"), host)
		if err != nil {
			t.Fatal(err)
		}
		if got := argValues(args, "-kernel"); len(got) != 1 || got[0] != tc.want {
			t.Errorf("Host.Kernel %q: -kernel %v, want %s", tc.hostKernel, got, tc.want)
		}
	}
}

func TestArgsShares(t *testing.T) {
	cfg := testConfig("amd64")
	cfg.Shares = []driver.Share{{Tag: "home", HostPath: "/home/u", GuestPath: "/home/u"}, {Tag: "ro", HostPath: "/opt", GuestPath: "/opt", ReadOnly: true}}
	args, err := Args(cfg, Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/a", QMPSocket: "/q"})
	if err != nil {
		t.Fatal(err)
	}
	fs := argValues(args, "-virtfs")
	if len(fs) != 2 || !strings.Contains(fs[0], "mount_tag=home") || !strings.Contains(fs[1], "readonly=on") {
		t.Errorf("-virtfs = %v", fs)
	}
	if app := argValues(args, "-append")[0]; !strings.Contains(app, "machine.shares=home=/home/u,ro=/opt:ro") {
		t.Errorf("-append %q lacks the shares", app)
	}
	cfg.Shares = []driver.Share{{Tag: "home", HostPath: `C:\Users\Ann Lee`, GuestPath: "/c/Users/Ann Lee"}}
	args, _ = Args(cfg, Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/a", QMPSocket: "/q"})
	if app := argValues(args, "-append")[0]; !strings.Contains(app, `machine.shares="home=/c/Users/Ann Lee"`) {
		t.Errorf("a share path with a space is not quoted: %q", app)
	}
}

func TestArgsRejects(t *testing.T) {
	for name, mutate := range map[string]func(*driver.Config){
		"no cpus":      func(c *driver.Config) { c.CPUs = 0 },
		"tiny memory":  func(c *driver.Config) { c.MemoryMiB = 64 },
		"no kernel":    func(c *driver.Config) { c.Kernel = "" },
		"bad arch":     func(c *driver.Config) { c.Arch = "riscv64" },
		"no data disk": func(c *driver.Config) { c.DataDisk = "" },
	} {
		cfg := testConfig("amd64")
		mutate(&cfg)
		if _, err := Args(cfg, Host{OS: "linux", Accel: AccelTCG}); err == nil {
			t.Errorf("%s: Args accepted it", name)
		}
	}
}

func TestDetectAccel(t *testing.T) {
	const intelFlags = "processor: 0\nflags\t\t: fpu vme vmx sse\n"
	const sandboxFlags = "processor: 0\nflags\t\t: fpu vme hypervisor sse\n"
	probe := func(cpuinfo string, kvmOpen bool, modules ...string) Probe {
		return Probe{
			ReadFile: func(string) ([]byte, error) {
				if cpuinfo == "" {
					return nil, os.ErrNotExist
				}
				return []byte(cpuinfo), nil
			},
			Exists: func(p string) bool {
				for _, m := range modules {
					if p == "/sys/module/"+m {
						return true
					}
				}
				return false
			},
			OpenRW:       func(string) bool { return kvmOpen },
			HVFSupported: func() bool { return true },
		}
	}
	tests := []struct {
		name, goos, hostArch, guestArch string
		probe                           Probe
		want                            string
	}{
		{"real kvm", "linux", "amd64", "amd64", probe(intelFlags, true, "kvm_intel"), AccelKVM},
		{"paravirtual kvm without vmx", "linux", "amd64", "amd64", probe(sandboxFlags, true, "kvm_pvm"), AccelTCG},
		{"vmx but no kvm module", "linux", "amd64", "amd64", probe(intelFlags, true, "kvm_pvm"), AccelTCG},
		{"no /dev/kvm", "linux", "amd64", "amd64", probe(intelFlags, false, "kvm_intel"), AccelTCG},
		{"foreign guest arch", "linux", "amd64", "arm64", probe(intelFlags, true, "kvm_intel"), AccelTCG},
		{"arm64 linux kvm", "linux", "arm64", "arm64", probe("", true), AccelKVM},
		{"macos hvf", "darwin", "arm64", "arm64", probe("", false), AccelHVF},
		{"windows whpx", "windows", "amd64", "amd64", probe("", false), AccelWHPX},
	}
	for _, tt := range tests {
		got, why := DetectAccel(tt.goos, tt.hostArch, tt.guestArch, tt.probe)
		if got != tt.want {
			t.Errorf("%s: DetectAccel = %s (%s), want %s", tt.name, got, why, tt.want)
		}
		if why == "" {
			t.Errorf("%s: no reason given", tt.name)
		}
	}
}

func TestBinary(t *testing.T) {
	if b, _ := Binary("windows", "amd64"); b != "qemu-system-x86_64.exe" {
		t.Errorf("windows binary %q", b)
	}
	if b, _ := Binary("linux", "arm64"); b != "qemu-system-aarch64" {
		t.Errorf("arm64 binary %q", b)
	}
	if _, err := Binary("linux", "mips"); err == nil || errors.Is(err, nil) {
		t.Error("mips accepted")
	}
}

// TestArgsKeepSecretsFromTheGuestAndOtherUsers: on every host OS, QMP is a unix socket in the
// machine's folder (never a TCP port another user or a container could reach), and the
// channel token reaches the guest only through fw_cfg from the private token file: it is in
// neither QEMU's argv (which other users can read in the process list) nor the kernel
// command line (which every container can read in /proc/cmdline).
func TestArgsKeepSecretsFromTheGuestAndOtherUsers(t *testing.T) {
	const tok = "00112233445566778899aabbccddeeff"
	for _, tc := range []struct {
		name   string
		host   Host
		qmp    string // exact -qmp value
		fwCfg  string // exact -fw_cfg value; "" means none
		arches []string
	}{
		{"linux unix channel", Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/m/dev/agent.sock", QMPSocket: "/m/dev/qmp.sock", Token: tok, TokenFile: "/m/dev/channel.token"},
			"unix:/m/dev/qmp.sock,server=on,wait=off", "name=opt/run.machine/token,file=/m/dev/channel.token", nil},
		{"linux vsock, no token", Host{OS: "linux", Accel: AccelKVM, VsockCID: 3, QMPSocket: "/m/dev/qmp.sock"},
			"unix:/m/dev/qmp.sock,server=on,wait=off", "", nil},
		{"macos, comma in the folder", Host{OS: "darwin", Accel: AccelHVF, AgentSocket: "/m/a,b/agent.sock", QMPSocket: "/m/a,b/qmp.sock", Token: tok, TokenFile: "/m/a,b/channel.token"},
			"unix:/m/a,,b/qmp.sock,server=on,wait=off", "name=opt/run.machine/token,file=/m/a,,b/channel.token", nil},
		{"windows tcp channel", Host{OS: "windows", Accel: AccelWHPX, AgentPort: 50123, QMPSocket: `C:/Users/me/.machine/dev/qmp.sock`, Token: tok, TokenFile: `C:/Users/me/.machine/dev/channel.token`},
			`unix:C:\Users\me\.machine\dev\qmp.sock,server=on,wait=off`, `name=opt/run.machine/token,file=C:\Users\me\.machine\dev\channel.token`, nil},
	} {
		for _, arch := range []string{"amd64", "arm64"} {
			args, err := Args(testConfig(arch), tc.host)
			if err != nil {
				t.Fatalf("%s/%s: %v", tc.name, arch, err)
			}
			if got := argValues(args, "-qmp"); len(got) != 1 || got[0] != tc.qmp {
				t.Errorf("%s/%s: -qmp %q, want %q", tc.name, arch, got, tc.qmp)
			}
			fw := argValues(args, "-fw_cfg")
			if tc.fwCfg == "" && len(fw) != 0 || tc.fwCfg != "" && (len(fw) != 1 || fw[0] != tc.fwCfg) {
				t.Errorf("%s/%s: -fw_cfg %q, want %q", tc.name, arch, fw, tc.fwCfg)
			}
			if all := strings.Join(args, " "); strings.Contains(all, tok) {
				t.Errorf("%s/%s: the token is in QEMU's argv: %s", tc.name, arch, all)
			}
		}
	}
	if _, err := Args(testConfig("amd64"), Host{OS: "windows", Accel: AccelWHPX, AgentPort: 50123, Token: tok, TokenFile: `C:\t`}); err == nil {
		t.Error("Args accepted no QMP socket")
	}
	if _, err := Args(testConfig("amd64"), Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/a", QMPSocket: "/q", Token: tok}); err == nil {
		t.Error("Args accepted a token with no file to pass it in")
	}
}

// Under TCG the kernel keeps no randomised mappings and no speculation mitigations, skips
// its crypto self-tests and the jitter entropy source, expedites RCU grace periods, and a
// multi-CPU kernel boots on one CPU unless the image's command line sets maxcpus itself;
// hardware acceleration gets none of these words.
func TestEmulationKernelWords(t *testing.T) {
	emulationWord := func(w string) bool {
		return w == "norandmaps" || strings.HasPrefix(w, "mitigations=") || setsMaxCPUs(w) ||
			w == "cryptomgr.notests" || strings.HasPrefix(w, "initcall_blacklist=") || strings.HasPrefix(w, "rcupdate.")
	}
	const tcg = "norandmaps mitigations=off cryptomgr.notests initcall_blacklist=jent_mod_init,crypto_kdf108_init rcupdate.rcu_expedited=1"
	for _, tt := range []struct {
		name    string
		accel   string
		cpus    int
		cmdline string
		want    string // the emulation words on the command line, in order
	}{
		{"tcg two CPUs", AccelTCG, 2, "panic=-1", tcg + " maxcpus=1"},
		{"tcg one CPU", AccelTCG, 1, "panic=-1", tcg},
		{"kvm two CPUs", AccelKVM, 2, "panic=-1", ""},
		{"hvf two CPUs", AccelHVF, 2, "panic=-1", ""},
		{"whpx two CPUs", AccelWHPX, 2, "panic=-1", ""},
		{"tcg, the image's own maxcpus", AccelTCG, 2, "panic=-1 maxcpus=2", "maxcpus=2 " + tcg},
	} {
		cfg := testConfig("amd64")
		cfg.CPUs, cfg.Cmdline = tt.cpus, tt.cmdline
		line, err := bootCmdline(cfg, Host{OS: "linux", Accel: tt.accel}, "ttyS0")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []string
		for _, w := range strings.Fields(line) {
			if emulationWord(w) {
				got = append(got, w)
			}
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s: emulation words %q, want %q (command line %q)", tt.name, got, tt.want, line)
		}
	}
}
