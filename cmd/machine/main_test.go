package main

import (
	"fmt"
	"os"
	"testing"
)

// TestMain keeps the test binary from acting as a host agent. `start` spawns
// os.Executable() as `hostagent NAME`; under `go test` that is this binary, and without
// this guard a start test that reaches the spawn would run the whole suite again in the
// child, which spawns again: a fork bomb.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "hostagent" {
		fmt.Fprintln(os.Stderr, "machine.test: refusing to run as a host agent (a test reached spawnAgent)")
		os.Exit(3)
	}
	os.Exit(m.Run())
}
