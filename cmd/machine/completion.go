package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent/store"
)

// completeMachineNames suggests the machines in $MACHINE_HOME for a command's NAME argument.
func completeMachineNames(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	s, err := store.Open()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names, err := s.List()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeNames gives every command whose first argument is a machine NAME the machine-name
// completion, so a new command gets it by its usage line alone.
func completeNames(c *cobra.Command) {
	if f := strings.Fields(c.Use); len(f) > 1 && (f[1] == "NAME" || f[1] == "[NAME]") && c.ValidArgsFunction == nil {
		c.ValidArgsFunction = completeMachineNames
		if c.Name() == "create" { // a new name: existing ones are the wrong answer
			c.ValidArgsFunction = cobra.NoFileCompletions
		}
	}
	for _, sub := range c.Commands() {
		completeNames(sub)
	}
}
