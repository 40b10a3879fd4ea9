//go:build unix

package main

import "syscall"

// detachedAttr puts the host agent in its own session so it survives the terminal.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
