package boot

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

// WriteHostFiles writes etc/hostname and etc/hosts under root.
func WriteHostFiles(root, hostname string) error {
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", hostname)
	return writeFiles(root, map[string]string{
		"etc/hostname": hostname + "\n",
		"etc/hosts":    hosts,
	})
}

// User-mode networking addresses (QEMU's slirp defaults).
const (
	UserAddr    = "10.0.2.15/24"
	UserGateway = "10.0.2.2"
	UserDNS     = "10.0.2.3"
)

// UserNetBatch is the `ip -batch` script for QEMU user networking on nic.
func UserNetBatch(nic string) string {
	return fmt.Sprintf("link set lo up\nlink set %[1]s up\naddr add %[2]s dev %[1]s\nroute add default via %[3]s dev %[1]s\n",
		nic, UserAddr, UserGateway)
}

// ForwardNICBatch is the `ip -batch` script for the forwarding NIC nic: its address on the
// link to the host agent and the link's large MTU, no gateway (only the host end is on it).
func ForwardNICBatch(nic string) string {
	return fmt.Sprintf("link set %[1]s mtu %[2]d up\naddr add %[3]s/%[4]d dev %[1]s\n",
		nic, bootparams.ForwardNICMTU, bootparams.ForwardNICGuestIP, bootparams.ForwardNICPrefix)
}

// WriteResolvConf writes etc/resolv.conf under root.
func WriteResolvConf(root string, servers ...string) error {
	s := ""
	for _, ns := range servers {
		s += "nameserver " + ns + "\n"
	}
	return writeFiles(root, map[string]string{"etc/resolv.conf": s})
}

func writeFiles(root string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		// /etc/resolv.conf is often a symlink into /run in images; replace it, not its target.
		os.Remove(p)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
