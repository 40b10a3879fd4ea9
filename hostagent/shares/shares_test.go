package shares

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/machine-run/machine/hostagent/driver"
)

func TestCheckGuestPath(t *testing.T) {
	tests := []struct {
		goos, host, want string
		err              error
	}{
		{"windows", `C:\Users\Ann Lee\src`, "/c/Users/Ann Lee/src", nil},
		{"windows", `d:\Work`, "/d/Work", nil},
		{"windows", `C:\`, "/c", nil},
		{"windows", `C:/`, "/c", nil},
		{"windows", `C:\Users\ann\`, "/c/Users/ann", nil},
		{"windows", `C:/Users\ann/src\app`, "/c/Users/ann/src/app", nil},
		{"windows", `C:\Users\\ann\.\src\..\x`, "/c/Users/ann/x", nil},
		{"windows", `E:\My Projects\a,b c`, "/e/My Projects/a,b c", nil},
		{"windows", `\\?\C:\Users\ann`, "/c/Users/ann", nil},
		{"windows", `\\server\share\src`, "", ErrUNC},
		{"windows", `//server/share`, "", ErrUNC},
		{"windows", `\\?\UNC\server\share`, "", ErrUNC},
		{"windows", `C:`, "", ErrNotAbsolute},
		{"windows", `C:src`, "", ErrNotAbsolute},
		{"windows", `\Users\ann`, "", ErrNotAbsolute},
		{"windows", `src\app`, "", ErrNotAbsolute},
		{"windows", `1:\x`, "", ErrNotAbsolute},
		{"windows", ``, "", ErrNotAbsolute},
		{"linux", "/home/ann/src", "/home/ann/src", nil},
		{"linux", "/home/Ann Lee", "/home/Ann Lee", nil},
		{"darwin", "/Users/ann", "/Users/ann", nil},
		{"darwin", `/Users/ann\x`, `/Users/ann\x`, nil},
		{"linux", "src", "", ErrNotAbsolute},
		// Folders of the user's keep working, on every host.
		{"darwin", "/Users/ann/src", "/Users/ann/src", nil},
		{"darwin", "/private/tmp/build", "/private/tmp/build", nil},
		{"darwin", "/var/folders/x1/T/y", "/var/folders/x1/T/y", nil},
		{"darwin", "/Volumes/Work", "/Volumes/Work", nil},
		{"linux", "/tmp/proj", "/tmp/proj", nil},
		{"linux", "/root", "/root", nil},
		{"linux", "/home", "/home", nil},
		{"linux", "/usr/local/src/app", "/usr/local/src/app", nil},
		{"linux", "/mnt/usb", "/mnt/usb", nil},
		{"linux", "/home/ann/./src/", "/home/ann/src", nil},
		{"windows", `C:\Windows`, "/c/Windows", nil},
		// The guest's own folders, their parents, and what lies inside the deep ones.
		{"linux", "/", "/", ErrSystemPath},
		{"linux", "//", "/", ErrSystemPath},
		{"linux", "/home/..", "/", ErrSystemPath},
		{"darwin", "/", "/", ErrSystemPath},
		{"linux", "/var", "/var", ErrSystemPath},
		{"linux", "/var/lib", "/var/lib", ErrSystemPath},
		{"linux", "/var/lib/docker", "/var/lib/docker", ErrSystemPath},
		{"linux", "/var/lib/docker/volumes/x", "/var/lib/docker/volumes/x", ErrSystemPath},
		{"linux", "/tmp", "/tmp", ErrSystemPath},
		{"darwin", "/tmp/", "/tmp", ErrSystemPath},
		{"linux", "/etc", "/etc", ErrSystemPath},
		{"linux", "/etc/docker", "/etc/docker", ErrSystemPath},
		{"linux", "/usr", "/usr", ErrSystemPath},
		{"linux", "/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", ErrSystemPath},
		{"linux", "/proc", "/proc", ErrSystemPath},
		{"linux", "/proc/1", "/proc/1", ErrSystemPath},
		{"linux", "/sys", "/sys", ErrSystemPath},
		{"linux", "/dev", "/dev", ErrSystemPath},
		{"linux", "/run", "/run", ErrSystemPath},
		{"linux", "/run/user/1000", "/run/user/1000", ErrSystemPath},
		{"linux", "/mnt", "/mnt", ErrSystemPath},
		{"linux", "/mnt/data", "/mnt/data", ErrSystemPath},
		{"linux", "/bin", "/bin", ErrSystemPath},
		{"linux", "/sbin", "/sbin", ErrSystemPath},
		{"linux", "/lib", "/lib", ErrSystemPath},
		{"linux", "/lib64", "/lib64", ErrSystemPath},
		{"linux", "/boot", "/boot", ErrSystemPath},
	}
	for _, tt := range tests {
		want := tt.want
		if tt.err != nil {
			want = "" // tt.want is the clean guest path that was refused
		}
		got, err := CheckGuestPath(tt.goos, tt.host)
		if got != want || !errors.Is(err, tt.err) {
			t.Errorf("CheckGuestPath(%s, %q) = %q, %v; want %q, %v", tt.goos, tt.host, got, err, want, tt.err)
		}
		if g := GuestPath(tt.goos, tt.host); g != want {
			t.Errorf("GuestPath(%s, %q) = %q, want %q", tt.goos, tt.host, g, want)
		}
	}
}

func TestDefault(t *testing.T) {
	tests := []struct {
		goos, home string
		want       []driver.Share
	}{
		{"windows", `C:\Users\Ann Lee`, []driver.Share{{Tag: "home", HostPath: `C:\Users\Ann Lee`, GuestPath: "/c/Users/Ann Lee"}}},
		{"darwin", "/Users/ann", []driver.Share{{Tag: "home", HostPath: "/Users/ann", GuestPath: "/Users/ann"}}},
		{"linux", "/home/ann", []driver.Share{{Tag: "home", HostPath: "/home/ann", GuestPath: "/home/ann"}}},
		{"windows", `\\fileserver\homes\ann`, nil},
		{"linux", "", nil},
		{"linux", "/", nil},
		{"linux", "//", nil},
		{"linux", "/var", nil},
	}
	for _, tt := range tests {
		if got := Default(tt.goos, tt.home); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Default(%s, %q) = %+v, want %+v", tt.goos, tt.home, got, tt.want)
		}
	}
}

func TestDefaultPaths(t *testing.T) {
	if got := DefaultPaths("linux", "/home/ann"); len(got) != 1 || got[0] != "/home/ann" {
		t.Errorf("linux defaults %q", got)
	}
	got := DefaultPaths("darwin", "/Users/ann")
	if strings.Join(got, " ") != "/Users/ann /private/tmp /var/folders" {
		t.Errorf("darwin defaults %q", got)
	}
	for _, p := range got {
		if _, err := CheckGuestPath("darwin", p); err != nil {
			t.Errorf("default share %s has no guest path: %v", p, err)
		}
	}
}
