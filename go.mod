module github.com/machine-run/machine

go 1.26.8

require (
	github.com/hashicorp/yamux v0.1.2
	github.com/spf13/cobra v1.10.2
	golang.org/x/net v0.62.0
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)
