//go:build darwin

// Package withasm has a body-less function that its assembly file provides.
package withasm

func add(a, b int64) int64

func Sum() int64 { return add(1, 2) }
