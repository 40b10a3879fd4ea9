//go:build darwin

// Package nobody declares functions without bodies: allowed only when assembly or a
// //go:linkname provides them.
package nobody

import _ "unsafe" // for go:linkname

func missing() int // ERROR: no assembly, no linkname

func (T) method() // ERROR: methods need a body too

type T struct{}

//go:linkname nanotime runtime.nanotime
func nanotime() int64

func Use() int64 { return nanotime() }
