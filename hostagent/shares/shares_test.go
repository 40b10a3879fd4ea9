package shares

import (
	"errors"
	"reflect"
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
	}
	for _, tt := range tests {
		got, err := CheckGuestPath(tt.goos, tt.host)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("CheckGuestPath(%s, %q) = %q, %v; want %q, %v", tt.goos, tt.host, got, err, tt.want, tt.err)
		}
		if g := GuestPath(tt.goos, tt.host); g != tt.want {
			t.Errorf("GuestPath(%s, %q) = %q, want %q", tt.goos, tt.host, g, tt.want)
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
	}
	for _, tt := range tests {
		if got := Default(tt.goos, tt.home); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Default(%s, %q) = %+v, want %+v", tt.goos, tt.home, got, tt.want)
		}
	}
}
