//go:build darwin

// Package directives places compiler directives where go build rejects them (misplaced
// compiler directive) and where it accepts them.
package directives

//go:noinline
func fine() int { return 1 }

//go:nosplit

// alsoFine has a blank line and its doc comment between it and the directive, which the
// compiler allows: no token comes between them.
func alsoFine() int { return 2 }

//go:noinline // ERROR: before a var
var x = 3

//go:norace // ERROR: before a type
type T int

func body() int {
	//go:noinline // ERROR: inside a function body
	y := x
	return y
}

//go:noinline // ERROR: a var comes between it and the func
var z = 4

func later() int { return z }

// A comment that merely mentions go:noinline is not a directive, nor is "// go:noinline".
// go:noinline

//go:generate echo directives other than the func-only ones may go anywhere
//go:noescape // ERROR: at the end of the file
