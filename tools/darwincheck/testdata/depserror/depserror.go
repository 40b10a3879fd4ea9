//go:build darwin

// Package depserror imports a package no module provides; go list reports it among the
// package's dependency errors.
package depserror

import _ "example.invalid/nosuch/pkg" // ERROR: no module provides it
