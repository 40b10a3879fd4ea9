// Package buildinfo names the build of the running binary, so the CLI and a host agent it
// started long ago can be told apart: a release's version, or the commit it was built from.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// version is set at build time for releases (-ldflags -X .../buildinfo.version=v1.2.3).
var version string

// Version is the release version, else the module version, else "dev-" and the VCS commit
// (with "-dirty" for uncommitted changes), else "dev".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" && !strings.HasPrefix(v, "v0.0.0-") {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return "dev-" + rev[:min(12, len(rev))] + dirty
}
