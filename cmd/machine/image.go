package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until the image builder lands; replaced by the real command.
func newImageCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "image",
		Short: "Build and manage guest images",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not built yet") },
	}
}
