package boot

import (
	"strings"
	"testing"
)

func TestHostAliasRules(t *testing.T) {
	want := []string{
		"iptables -w -t mangle -I PREROUTING 1 -d 10.0.2.2/32 -m conntrack --ctstate NEW -j DROP",
		"iptables -w -t mangle -I OUTPUT 1 -d 10.0.2.2/32 -m conntrack --ctstate NEW -j DROP",
		"ip6tables -w -t mangle -I PREROUTING 1 -d fec0::2/128 -m conntrack --ctstate NEW -j DROP",
		"ip6tables -w -t mangle -I OUTPUT 1 -d fec0::2/128 -m conntrack --ctstate NEW -j DROP",
	}
	got := HostAliasRules()
	if len(got) != len(want) {
		t.Fatalf("%d rules, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if g := strings.Join(got[i], " "); g != want[i] {
			t.Errorf("rule %d = %q, want %q", i, g, want[i])
		}
	}
}
