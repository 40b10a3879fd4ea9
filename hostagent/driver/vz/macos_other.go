//go:build !darwin

package vz

import "errors"

func hostMacOSVersion() (string, error) { return "", errors.New("not macOS") }
