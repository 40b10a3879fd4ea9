package boot

// QEMU's user networking answers connections to its host alias (10.0.2.2, and fec0::2 over
// IPv6) by connecting to the same port on the host's loopback: every container would reach
// every service the user runs on 127.0.0.1. Host access comes only through the explicit
// paths the host agent serves over the guest channel, so the guest drops new connections to
// the alias, from containers (they arrive routed, through PREROUTING) and from the guest
// itself (OUTPUT). Replies to connections the host opened through the alias (QEMU's hostfwd)
// are not new and still pass. The mangle table is used because Docker owns the filter
// table's chains and reorders them; it leaves mangle alone.

// Host aliases of QEMU's user networking.
const (
	UserHostAlias4 = UserGateway
	UserHostAlias6 = "fec0::2"
)

// HostAliasRules returns the iptables and ip6tables commands (program first) that close the
// host alias.
func HostAliasRules() [][]string {
	var cmds [][]string
	for _, fam := range []struct{ prog, addr string }{
		{"iptables", UserHostAlias4 + "/32"},
		{"ip6tables", UserHostAlias6 + "/128"},
	} {
		for _, chain := range []string{"PREROUTING", "OUTPUT"} {
			cmds = append(cmds, []string{fam.prog, "-w", "-t", "mangle", "-I", chain, "1",
				"-d", fam.addr, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"})
		}
	}
	return cmds
}
