package boot

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"github.com/machine-run/machine/guestagent/reaper"
)

// CloseHostAlias installs HostAliasRules. Every rule is tried; the error joins the failures,
// each with the command and what it said.
func CloseHostAlias(ctx context.Context, r *reaper.Reaper) error {
	var errs []error
	for _, c := range HostAliasRules() {
		if _, err := r.Output(ctx, exec.Command(c[0], c[1:]...)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close the host alias %s: %w", UserHostAlias4, err)
	}
	return nil
}
