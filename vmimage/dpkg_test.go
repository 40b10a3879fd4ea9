package vmimage

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDpkgStatus(t *testing.T) {
	status := `Package: docker.io
Status: install ok installed
Priority: optional
Version: 26.1.5+dfsg1-9+b9
Description: Linux container runtime
 continuation line with Version: 0
 .

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: runc
Status: install ok installed
Version: 1.1.15+ds1-2+b4
Package-Type: deb
`
	got, err := parseDpkgStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"docker.io": "26.1.5+dfsg1-9+b9", "runc": "1.1.15+ds1-2+b4"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestUpstreamVersion(t *testing.T) {
	for in, want := range map[string]string{
		"26.1.5+dfsg1-9+b9": "26.1.5",
		"1.7.24~ds1-6+b4":   "1.7.24",
		"1:2.3.4-1":         "2.3.4",
		"1.1.15+ds1-2":      "1.1.15",
		"6.12.48-1":         "6.12.48",
		"20.10.24":          "20.10.24",
		"":                  "",
	} {
		if got := upstreamVersion(in); got != want {
			t.Errorf("upstreamVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindModuleRoot(t *testing.T) {
	top := t.TempDir()
	deep := filepath.Join(top, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	// An unrelated go.mod in between is skipped.
	os.WriteFile(filepath.Join(top, "a", "go.mod"), []byte("module example.com/other\n"), 0o644)
	if _, err := findModuleRoot(deep); err == nil {
		t.Fatal("found a root without the machine go.mod")
	}
	os.WriteFile(filepath.Join(top, "go.mod"), []byte("// comment\nmodule "+ModulePath+"\n\ngo 1.26\n"), 0o644)
	got, err := findModuleRoot(deep)
	if err != nil || got != top {
		t.Fatalf("findModuleRoot = %q, %v; want %q", got, err, top)
	}
}
