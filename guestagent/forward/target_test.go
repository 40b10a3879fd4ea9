package forward

import (
	"net"
	"testing"
)

func TestTargetIP(t *testing.T) {
	if got := targetIP("10.1.2.3"); got != "10.1.2.3" {
		t.Errorf("explicit address changed to %s", got)
	}
	got := net.ParseIP(targetIP(""))
	if got == nil || got.To4() == nil {
		t.Fatalf("empty address resolved to %q, want an IPv4 address", targetIP(""))
	}
	if a := primaryIPv4(); a != "" && !got.Equal(net.ParseIP(a)) {
		t.Errorf("empty address resolved to %s, want the primary address %s", got, a)
	}
	if primaryIPv4() == "" && !got.IsLoopback() {
		t.Errorf("no primary address, yet resolved to %s instead of loopback", got)
	}
}
