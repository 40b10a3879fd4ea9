package qemu

import (
	"errors"
	"strings"
	"testing"
)

func TestLocateQEMU(t *testing.T) {
	const winBin = "qemu-system-x86_64.exe"
	tests := []struct {
		name  string
		goos  string
		env   map[string]string
		path  map[string]string // lookPath results
		files []string
		want  string
		err   []string // substrings of the error
	}{
		{name: "windows PATH", goos: "windows", path: map[string]string{winBin: `C:\tools\qemu\` + winBin},
			want: `C:\tools\qemu\` + winBin},
		{name: "windows Program Files", goos: "windows", env: map[string]string{"ProgramFiles": `D:\Program Files`},
			files: []string{`D:\Program Files\qemu\` + winBin}, want: `D:\Program Files\qemu\` + winBin},
		{name: "windows env folder wins over PATH", goos: "windows", env: map[string]string{EnvQEMU: `E:\qemu\`},
			path: map[string]string{winBin: `C:\tools\` + winBin}, files: []string{`E:\qemu\` + winBin}, want: `E:\qemu\` + winBin},
		{name: "windows env binary", goos: "windows", env: map[string]string{EnvQEMU: `E:\q\` + winBin},
			files: []string{`E:\q\` + winBin}, want: `E:\q\` + winBin},
		{name: "windows env wrong", goos: "windows", env: map[string]string{EnvQEMU: `E:\nothing`},
			files: []string{`C:\Program Files\qemu\` + winBin}, err: []string{EnvQEMU, `E:\nothing`}},
		{name: "windows missing", goos: "windows", env: map[string]string{"ProgramFiles": `C:\Program Files`},
			err: []string{winBin, `C:\Program Files\qemu`, "Windows Hypervisor Platform", "-FeatureName HypervisorPlatform", EnvQEMU}},
		{name: "linux PATH", goos: "linux", path: map[string]string{"qemu-system-x86_64": "/usr/bin/qemu-system-x86_64"},
			want: "/usr/bin/qemu-system-x86_64"},
		{name: "linux missing ignores Program Files", goos: "linux", files: []string{`C:\Program Files\qemu/qemu-system-x86_64`},
			err: []string{"apt-get install", EnvQEMU}},
		{name: "darwin env folder", goos: "darwin", env: map[string]string{EnvQEMU: "/opt/q/bin"},
			files: []string{"/opt/q/bin/qemu-system-x86_64"}, want: "/opt/q/bin/qemu-system-x86_64"},
	}
	for _, tt := range tests {
		bin, _ := Binary(tt.goos, "amd64")
		getenv := func(k string) string { return tt.env[k] }
		lookPath := func(f string) (string, error) {
			if p, ok := tt.path[f]; ok {
				return p, nil
			}
			return "", errors.New("executable file not found in %PATH%")
		}
		isFile := func(p string) bool {
			for _, f := range tt.files {
				if f == p {
					return true
				}
			}
			return false
		}
		got, err := locateQEMU(tt.goos, bin, getenv, lookPath, isFile)
		if tt.err == nil {
			if err != nil || got != tt.want {
				t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: found %q, want an error", tt.name, got)
			continue
		}
		for _, s := range tt.err {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, s)
			}
		}
	}
}
