package main

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"go/version"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// result is what one architecture's check found.
type result struct {
	Packages     int    // packages type-checked, dependencies included
	MainPackages int    // of which belong to the main module
	Errors       []diag // main-module packages only, sorted by position
}

// diag is one type error; File is relative to the working directory when under it.
type diag struct {
	File      string
	Line, Col int
	Msg       string
}

func (d diag) String() string {
	switch {
	case d.File == "":
		return d.Msg
	case d.Line == 0:
		return d.File + ": " + d.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Msg)
}

// check type-checks patterns and their dependencies for darwin/arch.
func check(ctx context.Context, dir, arch string, patterns []string) (*result, error) {
	if arch != "arm64" && arch != "amd64" {
		return nil, fmt.Errorf("GOARCH %q: darwin builds exist only for arm64 and amd64", arch)
	}
	pkgs, err := goList(ctx, dir, arch, patterns)
	if err != nil {
		return nil, err
	}
	sizes := types.SizesFor("gc", arch)
	c := &checker{
		fset:    token.NewFileSet(),
		sizes:   sizes,
		checked: map[string]*types.Package{"unsafe": types.Unsafe},
		seen:    map[diag]bool{},
		res:     &result{},
	}
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.checkPackage(p)
	}
	sort.SliceStable(c.res.Errors, func(i, j int) bool {
		a, b := c.res.Errors[i], c.res.Errors[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return c.res, nil
}

type checker struct {
	fset    *token.FileSet
	sizes   types.Sizes
	checked map[string]*types.Package // by go list ImportPath (test variants have their own)
	seen    map[diag]bool             // errors already reported
	res     *result
}

func (c *checker) checkPackage(p *listedPackage) {
	if p.ImportPath == "unsafe" {
		return
	}
	// The generated test main lives in the build cache and is not the project's code.
	if p.Name == "main" && p.ForTest == "" && strings.HasSuffix(p.ImportPath, ".test") {
		return
	}
	own := p.main()
	if own {
		c.res.MainPackages++
		if p.Error != nil {
			c.reportList(p.Error.Pos, p.Error.Err, p.ImportPath)
		}
		// A dependency that cannot be loaded (a missing module, a broken package outside
		// the main module) is reported where the main module imports it.
		for _, e := range p.DepsErrors {
			c.reportList(e.Pos, e.Err, p.ImportPath)
		}
	}
	c.res.Packages++

	var files []*ast.File
	parsed := true
	mode := parser.SkipObjectResolution
	if own {
		mode |= parser.ParseComments
	}
	for _, name := range append(append([]string(nil), p.GoFiles...), p.CgoFiles...) {
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.Dir, name)
		}
		f, err := parser.ParseFile(c.fset, path, nil, mode)
		if f != nil {
			files = append(files, f)
		}
		if err != nil && own {
			// The first syntax error of a file; the parser's later ones are mostly echoes
			// of its recovery.
			var list scanner.ErrorList
			if errors.As(err, &list) && len(list) > 1 {
				err = list[:1]
			}
			c.reportErr(err)
			parsed = false
		}
	}

	conf := types.Config{
		FakeImportC:      true,
		IgnoreFuncBodies: !own,
		Sizes:            c.sizes,
		Importer:         importerFunc(func(path string) (*types.Package, error) { return c.importFor(p, path) }),
		Error: func(err error) {
			// After a syntax error, type errors are mostly its echoes (go build stops there).
			if own && parsed {
				c.reportErr(err)
			}
		},
	}
	if p.Module != nil && p.Module.GoVersion != "" {
		conf.GoVersion = version.Lang("go" + p.Module.GoVersion)
	}
	// Errors reach conf.Error; the package is kept even when incomplete so dependents can
	// still be checked.
	pkg, _ := conf.Check(pathWithoutVariant(p.ImportPath), c.fset, files, nil)
	c.checked[p.ImportPath] = pkg
	if own && parsed {
		// What go build rejects and go/types does not.
		for _, d := range compilerChecks(c.fset, files, len(p.SFiles)+len(p.SysoFiles) > 0) {
			c.add(d)
		}
	}
}

// importFor resolves an import written in p's source through p's ImportMap (test variants,
// vendoring) to a package checked earlier.
func (c *checker) importFor(p *listedPackage, path string) (*types.Package, error) {
	if mapped, ok := p.ImportMap[path]; ok {
		path = mapped
	}
	if pkg, ok := c.checked[path]; ok && pkg != nil {
		return pkg, nil
	}
	return nil, fmt.Errorf("package %q not listed before %q (go list error?)", path, p.ImportPath)
}

func (c *checker) reportErr(err error) {
	var list scanner.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			c.add(diag{File: relative(e.Pos.Filename), Line: e.Pos.Line, Col: e.Pos.Column, Msg: e.Msg})
		}
		return
	}
	var terr types.Error
	if errors.As(err, &terr) {
		p := terr.Fset.Position(terr.Pos)
		c.add(diag{File: relative(p.Filename), Line: p.Line, Col: p.Column, Msg: terr.Msg})
		return
	}
	c.add(diag{Msg: err.Error()})
}

// reportList records a go list error, whose position is "file:line:col" or empty.
func (c *checker) reportList(pos, msg, pkg string) {
	d := diag{File: pkg, Msg: msg}
	if pos != "" {
		d.File = pos
		parts := strings.Split(pos, ":")
		if len(parts) >= 3 {
			line, err1 := strconv.Atoi(parts[len(parts)-2])
			col, err2 := strconv.Atoi(parts[len(parts)-1])
			if err1 == nil && err2 == nil {
				d.File, d.Line, d.Col = relative(strings.Join(parts[:len(parts)-2], ":")), line, col
			}
		}
	}
	c.add(d)
}

// add records d once: a file shared by a package and its test variant is checked twice.
func (c *checker) add(d diag) {
	if c.seen[d] {
		return
	}
	c.seen[d] = true
	c.res.Errors = append(c.res.Errors, d)
}

func relative(path string) string {
	wd, err := os.Getwd()
	if err != nil || !filepath.IsAbs(path) {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// pathWithoutVariant turns "p [p.test]" into "p".
func pathWithoutVariant(importPath string) string {
	if i := strings.Index(importPath, " ["); i >= 0 {
		return importPath[:i]
	}
	return importPath
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }
