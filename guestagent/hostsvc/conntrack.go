package hostsvc

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// conntrackTable is the kernel's connection-tracking table as text (CONFIG_NF_CONNTRACK_PROCFS,
// on in Debian's kernel), for the guest's own network namespace, where the engine's bridges
// NAT containers' packets.
const conntrackTable = "/proc/net/nf_conntrack"

// udpOrigPort finds, in a conntrack table, the UDP flow from src that the gateway rule
// redirected to the proxy (its reply tuple comes from gateway:proxyPort), and returns the port
// src sent to: what SO_ORIGINAL_DST gives for TCP, which UDP sockets have no equivalent of.
func udpOrigPort(table io.Reader, src netip.AddrPort, gateway netip.Addr, proxyPort uint16) (uint16, error) {
	sc := bufio.NewScanner(table)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[2] != "udp" {
			continue
		}
		orig, reply := tuples(f)
		if orig["src"] != src.Addr().String() || orig["sport"] != strconv.Itoa(int(src.Port())) ||
			orig["dst"] != gateway.String() || reply["src"] != gateway.String() ||
			reply["sport"] != strconv.Itoa(int(proxyPort)) {
			continue
		}
		port, err := strconv.ParseUint(orig["dport"], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("conntrack: bad port in %q", sc.Text())
		}
		return uint16(port), nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("conntrack: %w", err)
	}
	return 0, fmt.Errorf("conntrack: no redirected UDP flow from %v", src)
}

// tuples splits a conntrack line's key=value words into the original tuple (the first src,
// dst, sport, dport) and the reply tuple (the second).
func tuples(fields []string) (orig, reply map[string]string) {
	orig, reply = map[string]string{}, map[string]string{}
	for _, w := range fields {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		switch k {
		case "src", "dst", "sport", "dport":
			if _, seen := orig[k]; !seen {
				orig[k] = v
			} else if _, seen := reply[k]; !seen {
				reply[k] = v
			}
		}
	}
	return orig, reply
}
