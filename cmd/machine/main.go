// Command machine runs Linux containers on hosts without a Linux kernel: it boots a small VM
// with the Docker Engine and makes its socket, ports and folders feel local.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
