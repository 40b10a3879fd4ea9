package oci

import (
	"io"
	"log"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func mustHash(t *testing.T, s string) v1.Hash {
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
