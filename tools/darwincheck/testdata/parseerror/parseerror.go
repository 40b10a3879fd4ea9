//go:build darwin

// Package parseerror has a syntax error in a function body, where go list (which reads only
// the imports) does not see it; the type errors it causes are not reported on top of it.
package parseerror

func F(a, b int) int {
	return max(a, b // ERROR: syntax error
}
