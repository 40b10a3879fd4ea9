package cmdline

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	line := `BOOT_IMAGE=/vmlinuz console=ttyS0 quiet machine.root=/dev/vda machine.data=/dev/vdb ` +
		`machine.channel=vsock machine.net=dhcp machine.hostname=dev "foo=a b" machine.shares=home=/Users/me,tmp=/tmp/x` + "\n"
	p, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if p.Root != "/dev/vda" || p.Data != "/dev/vdb" || p.Channel != "vsock" || p.Net != "dhcp" || p.Hostname != "dev" {
		t.Fatalf("parsed %+v", p)
	}
	if p.Raw["foo"] != "a b" {
		t.Errorf("quoted value: got %q", p.Raw["foo"])
	}
	if _, ok := p.Raw["quiet"]; !ok {
		t.Error("bare word quiet missing")
	}
	if p.Shares["home"] != "/Users/me" || p.Shares["tmp"] != "/tmp/x" || len(p.Shares) != 2 {
		t.Errorf("shares: %v", p.Shares)
	}
}

func TestParseDefaultsAndOverride(t *testing.T) {
	p, err := Parse("machine.root=/dev/vda machine.root=/dev/vdc")
	if err != nil {
		t.Fatal(err)
	}
	if p.Root != "/dev/vdc" {
		t.Errorf("later word must win: root %q", p.Root)
	}
	if p.Channel != DefaultChannel || p.Net != DefaultNet || p.Hostname != DefaultHostname || p.Data != "" {
		t.Errorf("defaults: %+v", p)
	}
}

func TestParseErrors(t *testing.T) {
	for _, line := range []string{
		"machine.channel=tcp",
		"machine.net=bridge",
		"machine.shares=home",
		"machine.shares=home=relative",
	} {
		if _, err := Parse(line); err == nil || !strings.Contains(err.Error(), "kernel command line") {
			t.Errorf("Parse(%q): err = %v, want a kernel command line error", line, err)
		}
	}
}

func TestSharesWithSpaces(t *testing.T) {
	// The QEMU driver quotes the shares value when a path has a space (a Windows profile).
	p, err := Parse(`console=ttyS0 machine.shares="home=/c/Users/Ann Lee,src=/srv/x" quiet`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Shares["home"] != "/c/Users/Ann Lee" || p.Shares["src"] != "/srv/x" {
		t.Fatalf("shares %v", p.Shares)
	}
}
