package brokenvariants_test

import (
	"testing"

	"github.com/Code-Hex/vz/v3"
)

func TestX(t *testing.T) {
	vz.NoSuchFunction() // ERROR: external test packages are checked
	t.Log()
}
