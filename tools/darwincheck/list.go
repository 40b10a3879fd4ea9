package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// listedPackage is the part of `go list -json` output the checker reads.
type listedPackage struct {
	Dir        string
	ImportPath string
	Name       string
	ForTest    string
	Standard   bool
	GoFiles    []string
	CgoFiles   []string
	SFiles     []string // assembly, which may provide body-less functions
	SysoFiles  []string
	ImportMap  map[string]string
	Module     *struct {
		Path      string
		Main      bool
		GoVersion string
	}
	Error      *struct{ Pos, Err string }
	DepsErrors []*struct{ Pos, Err string }
}

func (p *listedPackage) main() bool { return p.Module != nil && p.Module.Main }

// goList returns the packages matching patterns and all their dependencies, test variants
// included, dependencies first, as a darwin/arch cgo build would compile them.
func goList(ctx context.Context, dir, arch string, patterns []string) ([]*listedPackage, error) {
	args := append([]string{"list", "-e", "-deps", "-test",
		"-json=Dir,ImportPath,Name,ForTest,Standard,GoFiles,CgoFiles,SFiles,SysoFiles,ImportMap,Module,Error,DepsErrors",
		"--"}, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH="+arch, "CGO_ENABLED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var pkgs []*listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listedPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, fmt.Errorf("go list: decode output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}
