//go:build e2e

package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

// testSecrets (part of TestFaults): what a container can read and reach. The serial
// channel's token is in the guest only through QEMU's fw_cfg, which containers cannot read,
// not on the kernel command line, which they can; and QEMU's host alias 10.0.2.2, which would
// take a container to any service on the host's loopback, is closed while the host's other
// addresses stay reachable.
func testSecrets(t *testing.T, name, ctxName string) {
	tok, err := os.ReadFile(filepath.Join(machineDir(name), "channel.token"))
	if err != nil || len(tok) != 32 {
		t.Fatalf("the host's token file: %q, %v", tok, err)
	}
	// The guest itself reads the token there (the channel it guards works, so it matched).
	if got := machine(t, "shell", name, "--", "cat", bootparams.TokenFwCfgPath); got != string(tok) {
		t.Errorf("guest's %s = %q, want the host's token", bootparams.TokenFwCfgPath, got)
	}

	// A host service on every interface: through the alias it would be the host's loopback.
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var peers []string
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			peers = append(peers, c.RemoteAddr().String())
			mu.Unlock()
			fmt.Fprintln(c, "host-service")
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	hostIP := nonLoopbackIPv4()
	// One container for every check (each run costs seconds under emulation).
	// The image has few applet links: grep and timeout go through busybox itself.
	script := fmt.Sprintf(`cat /proc/cmdline; echo '#fwcfg'; cat %[1]s; echo "exit=$?"; busybox grep -rl %[2]s /sys/firmware /proc/cmdline; echo '#alias'; %[5]s 10.0.2.2 %[3]d </dev/null; echo '#host'; [ -z "%[4]s" ] || %[5]s %[4]s %[3]d </dev/null; echo '#end'`,
		bootparams.TokenFwCfgPath, tok, port, hostIP, ncProbe)
	out := run(t, 2*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "busybox:e2e", "sh", "-c", script).stdout
	part := func(from, to string) string {
		_, rest, _ := strings.Cut(out, from+"\n")
		before, _, _ := strings.Cut(rest, to)
		return before
	}
	cmdline, _, _ := strings.Cut(out, "#fwcfg")
	fw, alias, host := part("#fwcfg", "#alias"), part("#alias", "#host"), part("#host", "#end")
	if strings.Contains(cmdline, string(tok)) || !strings.Contains(cmdline, "machine.token=fw_cfg:") {
		t.Errorf("a container's /proc/cmdline: %q (want no token, and where it is)", cmdline)
	}
	if strings.Contains(fw, string(tok)) || strings.Contains(fw, "exit=0") {
		t.Errorf("a container read the token from fw_cfg or found it in /sys/firmware: %q", fw)
	}
	if strings.Contains(alias, "host-service") {
		t.Errorf("a container reached the host's loopback through 10.0.2.2: %q", alias)
	}
	// The guest's own processes (and host-network containers) cannot either.
	hostNet := run(t, 2*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "--network", "host", "busybox:e2e",
		"sh", "-c", fmt.Sprintf("%s 10.0.2.2 %d </dev/null", ncProbe, port)).stdout
	if strings.Contains(hostNet, "host-service") {
		t.Errorf("a host-network container reached the host's loopback through 10.0.2.2: %q", hostNet)
	}
	mu.Lock()
	got := append([]string(nil), peers...)
	mu.Unlock()
	for _, p := range got {
		if strings.HasPrefix(p, "127.") {
			t.Errorf("the host service accepted %s: a connection through the alias", p)
		}
	}
	if hostIP == "" {
		t.Log("no non-loopback IPv4 address on this host: outbound through the NAT not checked")
	} else if !strings.Contains(host, "host-service") {
		t.Errorf("a container cannot reach the host's %s:%d (outbound through the NAT must still work): %q", hostIP, port, host)
	}
	t.Logf("token: not in /proc/cmdline, unreadable in containers, read by the guest from fw_cfg; host alias 10.0.2.2 closed; %s:%d reachable (peers %v)", hostIP, port, got)
}

// ncProbe connects and prints what the server says, giving up after a few seconds (a
// dropped SYN would otherwise wait out TCP's retries).
const ncProbe = "busybox timeout 8 nc -w 5"

// nonLoopbackIPv4 is an address of this host that QEMU's NAT reaches without the alias.
func nonLoopbackIPv4() string {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return ""
}
