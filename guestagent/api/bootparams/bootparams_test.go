package bootparams

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var bootTime = time.Date(2026, 12, 1, 20, 3, 4, 123456789, time.UTC)

// base is a complete contract as a driver would encode it.
func base() Params {
	return Params{
		Kernel:  []string{"softlockup_panic=1", "panic=-1"},
		Console: "ttyS0", RootFSType: "squashfs",
		Root: "/dev/vda", Data: "/dev/vdb",
		Channel: ChannelSerial, Net: NetUser, Hostname: "dev",
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Params)
		want   []string // substrings the command line must hold
	}{
		{"minimal", func(p *Params) {}, []string{"machine.channel=serial", "machine.net=user", "machine.hostname=dev", "console=ttyS0", "rootfstype=squashfs"}},
		{"no data disk, no kernel words", func(p *Params) { p.Data, p.Kernel, p.Console, p.RootFSType = "", nil, "", "" }, nil},
		{"vsock dhcp", func(p *Params) { p.Channel, p.Net, p.Console = ChannelVsock, NetDHCP, "hvc0" }, []string{"machine.channel=vsock", "machine.net=dhcp", "console=hvc0"}},
		{"no network", func(p *Params) { p.Net = NetNone }, []string{"machine.net=none"}},
		{"shares", func(p *Params) {
			p.Shares = []Share{{Tag: "share0", GuestPath: "/Users/me"}, {Tag: "share1", GuestPath: "/srv/x"}}
		}, []string{"machine.shares=share0=/Users/me,share1=/srv/x"}},
		{"home folder with spaces", func(p *Params) {
			p.Shares = []Share{{Tag: "share0", GuestPath: "/Users/Ann Lee"}, {Tag: "share1", GuestPath: "/c/Users/Bo  Ek/My Documents"}}
		}, []string{`machine.shares="share0=/Users/Ann Lee,share1=/c/Users/Bo  Ek/My Documents"`}},
		{"read-only shares", func(p *Params) {
			p.Shares = []Share{{Tag: "share0", GuestPath: "/home/u"}, {Tag: "share1", GuestPath: "/opt", ReadOnly: true}}
		}, []string{"machine.shares=share0=/home/u,share1=/opt:ro"}},
		{"paths with the list's separators and escapes", func(p *Params) {
			p.Shares = []Share{
				{Tag: "a", GuestPath: "/x,y:z/100%/\"q\"", ReadOnly: true},
				{Tag: "b", GuestPath: "/tab\there/ü/ro"},
			}
		}, []string{"machine.shares=a=/x%2Cy%3Az/100%25/%22q%22:ro,b=/tab%09here/ü/ro"}},
		{"rosetta", func(p *Params) {
			p.Rosetta = &Rosetta{Tag: RosettaTag, MountPoint: RosettaMountPoint}
		}, []string{"machine.rosetta=machine-rosetta=/mnt/machine-rosetta"}},
		{"rosetta with a space and shares", func(p *Params) {
			p.Shares = []Share{{Tag: "share0", GuestPath: "/Users/me", ReadOnly: true}}
			p.Rosetta = &Rosetta{Tag: "ros", MountPoint: "/mnt/a b"}
		}, []string{`machine.rosetta="ros=/mnt/a b"`}},
		{"token", func(p *Params) { p.Token = "00112233445566778899aabbccddeeff" }, []string{"machine.token=fw_cfg:opt/run.machine/token"}},
		{"time", func(p *Params) { p.Time = bootTime }, []string{"machine.time=2026-12-01T20:03:04.123456789Z"}},
		{"host access off", func(p *Params) { p.NoHostAccess = true }, []string{"machine.hostaccess=off"}},
		{"forwarding NIC", func(p *Params) { p.ForwardNIC = true }, []string{"machine.fwdnic=on"}},
		{"kernel words with spaces", func(p *Params) { p.Kernel = []string{"quiet", "foo=a b", "bare word"} }, []string{`foo="a b"`, `"bare word"`}},
		{"everything", func(p *Params) {
			p.Channel, p.Net, p.Console, p.Hostname = ChannelVsock, NetDHCP, "hvc0", "my-mac-1"
			p.Shares = []Share{{Tag: "share0", GuestPath: "/Users/Ann Lee"}, {Tag: "share1", GuestPath: "/Volumes/Data", ReadOnly: true}}
			p.Rosetta = &Rosetta{Tag: RosettaTag, MountPoint: RosettaMountPoint}
			p.Token = "tok-en_1"
			p.Time = bootTime
			p.ForwardNIC = true
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.mutate(&in)
			line, err := in.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("command line %q lacks %q", line, w)
				}
			}
			if in.Token != "" && strings.Contains(line, in.Token) {
				t.Errorf("command line %q carries the token %q (every container reads /proc/cmdline)", line, in.Token)
			}
			out, err := Decode(line)
			if err != nil {
				t.Fatalf("Decode(%q): %v", line, err)
			}
			want := in
			if want.Token != "" {
				// The secret stays with the host; the guest learns where to read it.
				want.Token, want.TokenFrom = "", TokenFwCfg
			}
			if !reflect.DeepEqual(out, want) {
				t.Errorf("round trip through %q:\n got %#v\nwant %#v", line, out, want)
			}
		})
	}
}

func TestDecodeDefaultsAndOverride(t *testing.T) {
	p, err := Decode("BOOT_IMAGE=/vmlinuz machine.root=/dev/vda machine.root=/dev/vdc quiet\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Params{Kernel: []string{"BOOT_IMAGE=/vmlinuz", "quiet"}, Root: "/dev/vdc",
		Channel: DefaultChannel, Net: DefaultNet, Hostname: DefaultHostname}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Decode = %#v, want %#v (later word wins, defaults applied)", p, want)
	}
}

// TestDecodeEarlierFormats reads the command lines the drivers wrote before this package: a
// guest image built now still boots a host agent that is a release behind.
func TestDecodeEarlierFormats(t *testing.T) {
	p, err := Decode(`softlockup_panic=1 panic=-1 machine.root=/dev/vda machine.data=/dev/vdb rootfstype=squashfs ` +
		`console=ttyS0 machine.channel=serial machine.net=user machine.hostname=dev machine.shares="home=/c/Users/Ann Lee,src=/srv/x" ` +
		`machine.token=00112233445566778899aabbccddeeff`)
	if err != nil {
		t.Fatal(err)
	}
	want := Params{Kernel: []string{"softlockup_panic=1", "panic=-1"}, Console: "ttyS0", RootFSType: "squashfs",
		Root: "/dev/vda", Data: "/dev/vdb", Channel: ChannelSerial, Net: NetUser, Hostname: "dev",
		Shares: []Share{{Tag: "home", GuestPath: "/c/Users/Ann Lee"}, {Tag: "src", GuestPath: "/srv/x"}},
		Token:  "00112233445566778899aabbccddeeff"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Decode =\n %#v\nwant\n %#v", p, want)
	}
}

func TestDecodeKeepsUnknownContractWords(t *testing.T) {
	p, err := Decode("machine.channel=vsock machine.future=1 machine.other")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Unknown, []string{"machine.future=1", "machine.other"}) || p.Kernel != nil {
		t.Errorf("Unknown = %q, Kernel = %q", p.Unknown, p.Kernel)
	}
	if _, err := p.Encode(); err == nil {
		t.Error("Encode accepted unknown contract words")
	}
}

func TestDecodeErrors(t *testing.T) {
	for line, want := range map[string]string{
		"machine.channel=tcp":                     "channel",
		"machine.net=bridge":                      "network mode",
		"machine.hostname=a_b":                    "hostname",
		"machine.shares=home":                     "not tag=/guest/path",
		"machine.shares=home=relative":            "not absolute",
		"machine.shares=a=/x,,b=/y":               "not tag=/guest/path",
		"machine.shares=a=/x:rw":                  "unknown flag",
		"machine.shares=a=/x,a=/y":                "used twice",
		"machine.shares=a=/x,b=/x":                "used by another share",
		"machine.shares=a=/x%zz":                  "bad escape",
		"machine.shares=a=/x%2":                   "truncated escape",
		"machine.shares=a=/x%00":                  "not absolute",
		"machine.rosetta=machine-rosetta":         "not tag=/mount/point",
		"machine.rosetta=r=rel":                   "not absolute",
		"machine.rosetta=r=/m machine.shares=r=/": "also a share's tag",
		"machine.time=yesterday":                  "RFC 3339",
		"machine.time=1969-01-01T00:00:00Z":       "time",
		"machine.token=a+b":                       "token",
		"console=tty\x01":                         "control character",
		"machine.root=dev/vda":                    "root device",
		"machine.hostaccess=yes":                  "want on or off",
		"machine.fwdnic=1":                        "want on or off",
	} {
		_, err := Decode(line)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "kernel command line: ") {
			t.Errorf("Decode(%q): err = %v, want a kernel command line error about %q", line, err, want)
		}
	}
}

// Host access is on unless the host says off: a guest booted by an older host, which never
// writes the key, keeps host.docker.internal.
func TestHostAccessDefaultsOn(t *testing.T) {
	for line, off := range map[string]bool{
		"machine.channel=serial":                        false,
		"machine.hostaccess=on":                         false,
		"machine.hostaccess=off":                        true,
		"machine.hostaccess=off machine.hostaccess=on":  false,
		"machine.channel=serial machine.hostaccess=off": true,
	} {
		p, err := Decode(line)
		if err != nil || p.NoHostAccess != off {
			t.Errorf("Decode(%q): NoHostAccess %v, err %v; want %v", line, p.NoHostAccess, err, off)
		}
	}
	line, err := base().Encode()
	if err != nil || strings.Contains(line, "hostaccess") {
		t.Errorf("host access on encodes %q (err %v): the key should be left out", line, err)
	}
}

func TestDecodeReturnsWhatItCouldRead(t *testing.T) {
	p, err := Decode("machine.channel=vsock machine.shares=broken machine.hostname=dev")
	if err == nil {
		t.Fatal("no error")
	}
	if p.Channel != ChannelVsock || p.Hostname != "dev" {
		t.Errorf("partial params %+v: a guest must still find its channel to report the error", p)
	}
}

func TestEncodeRefuses(t *testing.T) {
	long := strings.Repeat("/very-long-folder-name", 20)
	for name, tc := range map[string]struct {
		mutate func(*Params)
		want   string
	}{
		"no channel":             {func(p *Params) { p.Channel = "" }, "channel"},
		"no network mode":        {func(p *Params) { p.Net = "" }, "network mode"},
		"no hostname":            {func(p *Params) { p.Hostname = "" }, "hostname"},
		"contract key by hand":   {func(p *Params) { p.Kernel = append(p.Kernel, "machine.shares=a=/b") }, "field of the boot contract"},
		"console by hand":        {func(p *Params) { p.Kernel = []string{"console=hvc0"} }, "field of the boot contract"},
		"quote in a kernel word": {func(p *Params) { p.Kernel = []string{`a="b"`} }, "double quotes"},
		"tab in a kernel word":   {func(p *Params) { p.Kernel = []string{"a\tb"} }, "control characters"},
		"empty kernel word":      {func(p *Params) { p.Kernel = []string{""} }, "empty kernel word"},
		"bad tag":                {func(p *Params) { p.Shares = []Share{{Tag: "a b", GuestPath: "/x"}} }, "share tag"},
		"tag too long for virtiofs": {func(p *Params) {
			p.Shares = []Share{{Tag: strings.Repeat("t", 37), GuestPath: "/x"}}
		}, "share tag"},
		"rosetta relative": {func(p *Params) { p.Rosetta = &Rosetta{Tag: "r", MountPoint: "mnt"} }, "rosetta mount point"},
		"too long": {func(p *Params) {
			for i := range 5 {
				p.Shares = append(p.Shares, Share{Tag: "share" + string(rune('0'+i)), GuestPath: long + string(rune('a'+i))})
			}
		}, "too long"},
		"time past 9999": {func(p *Params) { p.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "time"},
	} {
		p := base()
		tc.mutate(&p)
		line, err := p.Encode()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Encode = %q, %v; want an error about %q", name, line, err, tc.want)
		}
		if name == "too long" && !errors.Is(err, ErrTooLong) {
			t.Errorf("too long: %v is not ErrTooLong", err)
		}
	}
}

// FuzzDecode checks that the guest's decoder never panics and that whatever it accepts
// survives the host's encoder unchanged. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(`console=ttyS0 machine.channel=serial machine.shares="share0=/Users/Ann Lee,share1=/opt:ro"`)
	f.Fuzz(func(t *testing.T, line string) {
		p, err := Decode(line)
		if err != nil {
			return
		}
		p.Unknown = nil
		enc, err := p.Encode()
		if errors.Is(err, ErrTooLong) {
			return
		}
		if err != nil {
			t.Fatalf("Decode(%q) accepted %#v, which Encode refuses: %v", line, p, err)
		}
		q, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) = %v (encoded %q)", line, err, enc)
		}
		if p.Token != "" {
			// An older host's literal token is re-encoded as its new source, never as itself.
			p.Token, p.TokenFrom = "", TokenFwCfg
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("through %q -> %q:\n first %#v\nsecond %#v", line, enc, p, q)
		}
	})
}

func TestReadToken(t *testing.T) {
	const tok = "00112233445566778899aabbccddeeff"
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	for _, tc := range []struct {
		name    string
		p       Params
		files   map[string]string
		want    string
		wantErr string
	}{
		{"no token", Params{}, nil, "", ""},
		{"literal from an older host", Params{Token: tok}, nil, tok, ""},
		{"fw_cfg", Params{TokenFrom: TokenFwCfg}, map[string]string{TokenFwCfgPath: tok}, tok, ""},
		{"fw_cfg missing", Params{TokenFrom: TokenFwCfg}, nil, "", "qemu_fw_cfg"},
		{"fw_cfg empty", Params{TokenFrom: TokenFwCfg}, map[string]string{TokenFwCfgPath: ""}, "", "0 bytes"},
		{"fw_cfg with a newline", Params{TokenFrom: TokenFwCfg}, map[string]string{TokenFwCfgPath: tok + "\n"}, "", "33 bytes"},
		{"unknown source", Params{TokenFrom: "smbios"}, nil, "", "token source"},
	} {
		got, err := ReadToken(tc.p, files(tc.files))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: ReadToken = %q, %v; want an error with %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: ReadToken = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestDecodeTokenSource(t *testing.T) {
	p, err := Decode("machine.token=fw_cfg:opt/run.machine/token")
	if err != nil || p.TokenFrom != TokenFwCfg || p.Token != "" {
		t.Fatalf("Decode = %+v, %v; want the fw_cfg source and no literal token", p, err)
	}
	if _, err := Decode("machine.token=fw_cfg:opt/other/token"); err == nil {
		t.Error("Decode accepted a token source this version does not know")
	}
}
