package vmimage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModulePath is the Go module whose ./cmd/machine-guestagent is the guest agent.
const ModulePath = "github.com/machine-run/machine"

// ErrNoModuleRoot is returned when no enclosing go.mod declares ModulePath.
var ErrNoModuleRoot = errors.New("not inside the machine source tree")

// findModuleRoot walks up from dir to the directory whose go.mod declares ModulePath.
func findModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if goModDeclares(filepath.Join(d, "go.mod"), ModulePath) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w: no go.mod for %s above %s: pass --agent PATH or run from the source tree",
				ErrNoModuleRoot, ModulePath, dir)
		}
	}
}

func goModDeclares(path, module string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == module
		}
	}
	return false
}

// buildAgent compiles the static guest agent for arch into out, from the module root above
// the working directory.
func buildAgent(ctx context.Context, arch, out string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/machine-guestagent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if err := runTool(cmd); err != nil {
		return fmt.Errorf("build guest agent for %s: %w", arch, err)
	}
	return nil
}
