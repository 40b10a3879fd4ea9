package main

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// doWatch prints "ready" once the watch is set, then one line per event: the mask's names
// and the file name.
func doWatch(dir string) error {
	fd, err := unix.InotifyInit1(0)
	if err != nil {
		return err
	}
	mask := uint32(unix.IN_CREATE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO)
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		return err
	}
	fmt.Println("ready")
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return err
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				b := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				name = unix.ByteSliceToString(b)
			}
			fmt.Fprintf(os.Stdout, "%s %s\n", maskNames(ev.Mask), name)
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

func maskNames(m uint32) string {
	s := ""
	for _, n := range []struct {
		bit  uint32
		name string
	}{{unix.IN_CREATE, "CREATE"}, {unix.IN_MODIFY, "MODIFY"}, {unix.IN_ATTRIB, "ATTRIB"}, {unix.IN_CLOSE_WRITE, "CLOSE_WRITE"}, {unix.IN_DELETE, "DELETE"}, {unix.IN_MOVED_FROM, "MOVED_FROM"}, {unix.IN_MOVED_TO, "MOVED_TO"}} {
		if m&n.bit != 0 {
			if s != "" {
				s += ","
			}
			s += n.name
		}
	}
	return s
}
