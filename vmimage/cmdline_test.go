package vmimage

import (
	"reflect"
	"testing"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

// TestCmdlineHoldsNoContract: the image names only kernel words and its root's filesystem;
// devices, channel, shares and the rest are the drivers' to encode through bootparams.
func TestCmdlineHoldsNoContract(t *testing.T) {
	p, err := bootparams.Decode(Cmdline)
	if err != nil {
		t.Fatal(err)
	}
	want := bootparams.Params{
		Kernel: []string{"panic=-1", "page_reporting.page_reporting_order=5", "cgroup.memory=nokmem"}, RootFSType: rootFSType,
		Channel: bootparams.DefaultChannel, Net: bootparams.DefaultNet, Hostname: bootparams.DefaultHostname,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Decode(%q) = %#v, want only kernel words and rootfstype", Cmdline, p)
	}
}
