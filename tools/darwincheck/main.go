// Command darwincheck type-checks the project's darwin build without a macOS SDK.
//
// For each GOARCH it asks `go list -deps -test` (GOOS=darwin, CGO_ENABLED=1) which files a real
// darwin build would compile, cgo files included, then type-checks every package from source
// with go/types in dependency order, faking package "C". Dependencies are checked without
// function bodies. For packages of the main module it reports, as file:line:col: syntax
// errors (the first of each file), type errors, what go build rejects though go/types
// accepts it (func-only directives such as //go:noinline not directly before a func
// declaration; functions without a body that no assembly or //go:linkname provides), and go
// list's errors, including those of dependencies the main module cannot load. The exit
// status is 1 when there are any.
//
// Usage:
//
//	go run ./tools/darwincheck [-arch arm64,amd64] [-C dir] [packages]
//
// Packages default to ./...; a directory under testdata can be named explicitly.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("darwincheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	archs := fs.String("arch", "arm64,amd64", "comma-separated GOARCH values to check")
	dir := fs.String("C", "", "run go list in this directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	failed := false
	for _, arch := range strings.Split(*archs, ",") {
		res, err := check(ctx, *dir, arch, patterns)
		if err != nil {
			fmt.Fprintf(stderr, "darwincheck: darwin/%s: %v\n", arch, err)
			return 2
		}
		for _, e := range res.Errors {
			fmt.Fprintf(stdout, "darwin/%s: %s\n", arch, e)
		}
		fmt.Fprintf(stdout, "darwin/%s: %d packages checked (%d of the main module), %d errors\n",
			arch, res.Packages, res.MainPackages, len(res.Errors))
		failed = failed || len(res.Errors) > 0
	}
	if failed {
		return 1
	}
	return 0
}
