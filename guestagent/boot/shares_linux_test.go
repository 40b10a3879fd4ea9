package boot

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMountSharesReportsEachFailure(t *testing.T) {
	dir := t.TempDir()
	mounted, err := MountShares(map[string]string{
		"relative":         "not/absolute",
		"machine-no-such0": filepath.Join(dir, "a"),
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
