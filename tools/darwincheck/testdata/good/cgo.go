//go:build darwin

package good

/*
static int answer(void) { return 42; }
*/
import "C"

import "unsafe"

func answer() int { return int(C.answer()) }

// wordSize exercises the unsafe package, which go list reports with no files.
func wordSize() uintptr { return unsafe.Sizeof(uintptr(0)) }
