package boot

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/machine-run/machine/guestagent/api/bootparams"
)

func TestMountSharesReportsEachFailure(t *testing.T) {
	dir := t.TempDir()
	mounted, err := MountShares([]bootparams.Share{
		{Tag: "relative", GuestPath: "not/absolute"},
		{Tag: "machine-no-such0", GuestPath: filepath.Join(dir, "a"), ReadOnly: true},
	})
	if len(mounted) != 0 {
		t.Fatalf("mounted %v from devices that do not exist", mounted)
	}
	if err == nil {
		t.Fatal("no error for shares that cannot be mounted")
	}
	for _, want := range []string{`share "relative"`, "not absolute", `share "machine-no-such0"`, "9p:", "virtiofs:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
