package vz

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckMacOS(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
		want    string // in the error
	}{
		{"13.0", true, ""},
		{"13", true, ""},
		{"13.6.1", true, ""},
		{"14.2", true, ""},
		{"15.0.1", true, ""},
		{"26.1", true, ""},
		{"12.7.6", false, "this Mac runs 12.7.6"},
		{"12", false, "this Mac runs 12.0"},
		{"11.7.10", false, "needs macOS 13.0 or newer"},
		{"10.16", false, "this Mac runs 10.16"},
		{"10.15.7", false, "this Mac runs 10.15.7"},
		{"", false, "macOS version"},
		{"thirteen", false, "macOS version"},
		{"13.x", false, "macOS version"},
		{"13.1.2.3", false, "macOS version"},
		{"0.1", false, "macOS version"},
		{"-13", false, "macOS version"},
	} {
		err := CheckMacOS(tc.version)
		if tc.ok {
			if err != nil {
				t.Errorf("CheckMacOS(%q) = %v, want ok", tc.version, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrHostUnsupported) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--driver qemu") {
			t.Errorf("CheckMacOS(%q) = %v, want ErrHostUnsupported mentioning %q and --driver qemu", tc.version, err, tc.want)
		}
	}
}

func TestMacOSVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"12.7", "13.0", true},
		{"13.0", "13.0", false},
		{"13.0.1", "13.0", false},
		{"13.0", "13.0.1", true},
		{"13.10", "13.9", false}, // numeric, not lexical
		{"9.9", "10.0", true},
	} {
		a, _ := ParseMacOSVersion(tc.a)
		b, _ := ParseMacOSVersion(tc.b)
		if a.Less(b) != tc.less {
			t.Errorf("%s < %s = %v, want %v", tc.a, tc.b, a.Less(b), tc.less)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, goos := range []string{"linux", "windows"} {
		err := checkHost(goos, func() (string, error) { t.Fatal("read a macOS version on " + goos); return "", nil })
		if !errors.Is(err, ErrHostUnsupported) || !strings.Contains(err.Error(), "this host runs "+goos) || !strings.Contains(err.Error(), "--driver qemu") {
			t.Errorf("%s: %v", goos, err)
		}
	}
	if err := checkHost("darwin", func() (string, error) { return "14.5", nil }); err != nil {
		t.Errorf("darwin 14.5: %v", err)
	}
	if err := checkHost("darwin", func() (string, error) { return "12.6", nil }); !errors.Is(err, ErrHostUnsupported) {
		t.Errorf("darwin 12.6: %v", err)
	}
	if err := checkHost("darwin", func() (string, error) { return "", errors.New("sysctl failed") }); !errors.Is(err, ErrHostUnsupported) || !strings.Contains(err.Error(), "sysctl failed") {
		t.Errorf("unreadable version: %v", err)
	}
}
