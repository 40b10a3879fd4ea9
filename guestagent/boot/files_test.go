package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostAndResolvFiles(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	// Images often ship resolv.conf as a link into /run; it must be replaced, not followed.
	target := filepath.Join(root, "elsewhere")
	os.WriteFile(target, []byte("old"), 0o644)
	os.Symlink(target, filepath.Join(root, "etc/resolv.conf"))
	if err := WriteHostFiles(root, "dev"); err != nil {
		t.Fatal(err)
	}
	if err := WriteResolvConf(root, UserDNS); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(root, p)); return string(b) }
	if read("etc/hostname") != "dev\n" || !strings.Contains(read("etc/hosts"), "127.0.1.1\tdev\n") {
		t.Fatalf("hostname %q hosts %q", read("etc/hostname"), read("etc/hosts"))
	}
	if read("etc/resolv.conf") != "nameserver 10.0.2.3\n" || read("elsewhere") != "old" {
		t.Fatalf("resolv.conf %q, link target %q", read("etc/resolv.conf"), read("elsewhere"))
	}
}

func TestUserNetBatch(t *testing.T) {
	want := "link set lo up\nlink set eth0 up\naddr add 10.0.2.15/24 dev eth0\nroute add default via 10.0.2.2 dev eth0\n"
	if got := UserNetBatch("eth0"); got != want {
		t.Fatalf("batch:\n%s\nwant:\n%s", got, want)
	}
}

func TestForwardNICBatch(t *testing.T) {
	want := "link set eth1 mtu 65520 up\naddr add 192.168.65.10/30 dev eth1\n"
	if got := ForwardNICBatch("eth1"); got != want {
		t.Fatalf("batch:\n%s\nwant:\n%s", got, want)
	}
}
