//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "machine-guestagent runs only inside the Linux guest")
	os.Exit(2)
}
