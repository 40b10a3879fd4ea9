//go:build darwin

package parseerror

// G is fine; the package's other file is not.
func G() int { return 1 }
