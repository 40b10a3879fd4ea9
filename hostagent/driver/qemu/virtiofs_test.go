package qemu

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/machine-run/machine/hostagent/driver"
)

const (
	rustBanner = "virtiofsd 1.13.2\n"
	cBanner    = "virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard\n"
)

func TestIsRustVirtiofsd(t *testing.T) {
	for in, want := range map[string]bool{
		rustBanner: true, "virtiofsd 1.5.0": true, cBanner: false, "": false, "virtiofsd": false, "qemu 7.2": false,
	} {
		if got := isRustVirtiofsd(in); got != want {
			t.Errorf("isRustVirtiofsd(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestLocateVirtiofsd(t *testing.T) {
	tests := []struct {
		name     string
		goos     string
		accel    string // AccelKVM when empty
		euid     int
		env      string
		inPath   string            // what PATH lookup finds ("" = nothing)
		files    map[string]string // existing files and what --version prints
		want     string
		whyHas   string // substring of why, when want is ""
		errorHas string
	}{
		{name: "not linux", goos: "darwin", files: map[string]string{"/usr/libexec/virtiofsd": rustBanner}, whyHas: "only on Linux"},
		{name: "off by env", goos: "linux", env: "none", files: map[string]string{"/usr/libexec/virtiofsd": rustBanner}, whyHas: "MACHINE_VIRTIOFSD=none"},
		{name: "env names it", goos: "linux", env: "/opt/vfs", files: map[string]string{"/opt/vfs": rustBanner}, want: "/opt/vfs"},
		{name: "env names it under TCG too", goos: "linux", accel: AccelTCG, env: "/opt/vfs", files: map[string]string{"/opt/vfs": rustBanner}, want: "/opt/vfs"},
		{name: "not by default under TCG", goos: "linux", accel: AccelTCG, files: map[string]string{"/usr/libexec/virtiofsd": rustBanner}, whyHas: "under emulation (TCG)"},
		{name: "env names it, non-root too", goos: "linux", euid: 1000, env: "/opt/vfs", files: map[string]string{"/opt/vfs": rustBanner}, want: "/opt/vfs"},
		{name: "env names nothing", goos: "linux", env: "/opt/missing", errorHas: "MACHINE_VIRTIOFSD=/opt/missing is not a file"},
		{name: "env names the C daemon", goos: "linux", env: "/usr/lib/qemu/virtiofsd", files: map[string]string{"/usr/lib/qemu/virtiofsd": cBanner}, errorHas: "not the Rust virtiofsd"},
		{name: "non-root", goos: "linux", euid: 1000, files: map[string]string{"/usr/libexec/virtiofsd": rustBanner}, whyHas: "needs root"},
		{name: "PATH first", goos: "linux", inPath: "/usr/bin/virtiofsd", files: map[string]string{"/usr/bin/virtiofsd": rustBanner, "/usr/libexec/virtiofsd": rustBanner}, want: "/usr/bin/virtiofsd"},
		{name: "libexec", goos: "linux", files: map[string]string{"/usr/libexec/virtiofsd": rustBanner}, want: "/usr/libexec/virtiofsd"},
		{
			name: "skips QEMU's C daemon for the installed one", goos: "linux",
			files: map[string]string{"/usr/lib/qemu/virtiofsd": cBanner, "/usr/local/libexec/virtiofsd": rustBanner},
			want:  "/usr/local/libexec/virtiofsd",
		},
		{name: "only the C daemon", goos: "linux", files: map[string]string{"/usr/lib/qemu/virtiofsd": cBanner}, whyHas: "legacy C virtiofsd (/usr/lib/qemu/virtiofsd)"},
		{name: "none at all", goos: "linux", whyHas: "no virtiofsd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == EnvVirtiofsd {
					return tt.env
				}
				return ""
			}
			lookPath := func(string) (string, error) {
				if tt.inPath == "" {
					return "", errors.New("not found")
				}
				return tt.inPath, nil
			}
			isFile := func(p string) bool { _, ok := tt.files[p]; return ok }
			version := func(p string) string { return tt.files[p] }
			accel := tt.accel
			if accel == "" {
				accel = AccelKVM
			}
			got, why, err := locateVirtiofsd(tt.goos, accel, tt.euid, getenv, lookPath, isFile, version)
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("err = %v, want one saying %q", err, tt.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("path = %q, want %q (why %q)", got, tt.want, why)
			}
			if tt.want == "" && !strings.Contains(why, tt.whyHas) {
				t.Errorf("why = %q, want it to say %q", why, tt.whyHas)
			}
		})
	}
}

func TestVirtiofsdArgs(t *testing.T) {
	rw := virtiofsdArgs("/m/dev/fs0.sock", "/home/u", false)
	for _, want := range []string{"--socket-path=/m/dev/fs0.sock", "--shared-dir=/home/u", "--cache=never", "--allow-mmap", "--sandbox=namespace"} {
		if !slices.Contains(rw, want) {
			t.Errorf("args %v lack %s", rw, want)
		}
	}
	if slices.Contains(rw, "--readonly") {
		t.Errorf("a writable share is read-only: %v", rw)
	}
	if ro := virtiofsdArgs("/s", "/d", true); !slices.Contains(ro, "--readonly") {
		t.Errorf("a read-only share is writable by the guest: %v", ro)
	}
}

func TestArgsVirtiofsShares(t *testing.T) {
	cfg := testConfig("amd64")
	cfg.Shares = []driver.Share{
		{Tag: "home", HostPath: "/home/u", GuestPath: "/home/u"},
		{Tag: "data", HostPath: "/srv/data", GuestPath: "/srv/data", ReadOnly: true},
	}
	host := Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/a", QMPSocket: "/q", FSSockets: []string{"/m/dev/fs0.sock", ""}}
	args, err := Args(cfg, host)
	if err != nil {
		t.Fatal(err)
	}
	if got := argValues(args, "-machine"); len(got) != 1 || got[0] != "q35,memory-backend=ram" {
		t.Errorf("-machine = %v: guest RAM must be the shared backend", got)
	}
	if got := argValues(args, "-object"); len(got) != 1 || got[0] != "memory-backend-memfd,id=ram,size=2048M,share=on" {
		t.Errorf("-object = %v, want one shared memfd of the machine's memory", got)
	}
	if got := argValues(args, "-chardev"); !slices.Contains(got, "socket,id=fs0,path=/m/dev/fs0.sock") {
		t.Errorf("-chardev = %v, want share 0's virtiofsd socket", got)
	}
	devs := argValues(args, "-device")
	if !slices.Contains(devs, "vhost-user-fs-pci,queue-size=1024,chardev=fs0,tag=home") {
		t.Errorf("-device = %v, want share 0 on vhost-user-fs", devs)
	}
	vfs := argValues(args, "-virtfs")
	if len(vfs) != 1 || !strings.Contains(vfs[0], "mount_tag=data") || !strings.Contains(vfs[0], "readonly=on") {
		t.Errorf("-virtfs = %v, want only share 1, on 9p and read-only", vfs)
	}

	// Without virtiofs, RAM stays private and every share is 9p.
	host.FSSockets = nil
	args, _ = Args(cfg, host)
	if got := argValues(args, "-object"); len(got) != 0 {
		t.Errorf("-object = %v without virtiofs", got)
	}
	if got := argValues(args, "-virtfs"); len(got) != 2 {
		t.Errorf("-virtfs = %v, want both shares on 9p", got)
	}

	host.FSSockets = []string{"/s0", "/s1", "/s2"}
	if _, err := Args(cfg, host); err == nil {
		t.Error("more sockets than shares accepted")
	}
	host.OS, host.FSSockets = "darwin", []string{"/s0"}
	if _, err := Args(cfg, host); err == nil || !strings.Contains(err.Error(), "Linux") {
		t.Errorf("virtiofs on a darwin host: err = %v", err)
	}
}
