//go:build darwin

// Package brokenvariants has errors only where a naive checker would not look: in a cgo file
// and in an external test file.
package brokenvariants

// #include <stdlib.h>
import "C"

// Size is fine: C.size_t is faked.
func Size(n int) C.size_t { return C.size_t(n) }

func count() int { return "one" } // ERROR: cgo files are checked
