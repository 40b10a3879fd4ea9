// Package test holds the end-to-end tests: they boot real guest images under QEMU through the
// machine CLI and drive them with the host's docker CLI. They are built only with the e2e tag
// (`make e2e`), never by `go test ./...`.
package test
