package main

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// detachedAttr runs the host agent without a console, outside the terminal's process group.
func detachedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP, HideWindow: true}
}
