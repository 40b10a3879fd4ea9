//go:build !linux

package main

import "errors"

func doWatch(string) error { return errors.New("-watch needs Linux (inotify)") }
