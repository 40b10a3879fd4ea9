package main

import (
	"go/ast"
	"go/token"
	"slices"
	"strings"
)

// funcDirectives may only annotate a func declaration; the compiler rejects them anywhere
// else ("misplaced compiler directive").
var funcDirectives = []string{
	"go:nointerface", "go:noescape", "go:norace", "go:nosplit", "go:noinline", "go:nocheckptr",
	"go:registerparams", "go:cgo_unsafe_args", "go:uintptrkeepalive", "go:uintptrescapes",
	"go:systemstack", "go:nowritebarrier", "go:nowritebarrierrec", "go:yeswritebarrierrec",
}

// compilerChecks finds what go build rejects in files that type-check: func-only directives
// not directly before a func declaration, and functions declared without a body that
// neither the package's assembly (hasAsm) nor a //go:linkname provides.
func compilerChecks(fset *token.FileSet, files []*ast.File, hasAsm bool) []diag {
	var out []diag
	at := func(pos token.Pos, msg string) {
		p := fset.Position(pos)
		out = append(out, diag{File: relative(p.Filename), Line: p.Line, Col: p.Column, Msg: msg})
	}
	linknamed := map[string]bool{}
	for _, f := range files {
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				name, args := directive(c.Text)
				if name == "go:linkname" && len(args) > 0 {
					linknamed[args[0]] = true
				}
				if slices.Contains(funcDirectives, name) && !beforeFunc(f, c.Slash) {
					at(c.Slash, "misplaced compiler directive //"+name+": it must come right before a func declaration")
				}
			}
		}
	}
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body != nil {
				continue
			}
			if hasAsm || (fn.Recv == nil && linknamed[fn.Name.Name] && fn.Name.Name != "init") {
				continue
			}
			at(fn.Name.Pos(), "missing function body for "+fn.Name.Name+": no assembly in the package provides it and no //go:linkname names it")
		}
	}
	return out
}

// directive splits a //go:name comment into its name and arguments; other comments
// (including "// go:name" and block comments) give "".
func directive(text string) (name string, args []string) {
	if !strings.HasPrefix(text, "//go:") {
		return "", nil
	}
	fields := strings.Fields(text[2:])
	return fields[0], fields[1:]
}

// beforeFunc reports whether the directive at pos is followed by a func declaration with
// no token between them: after the package clause, inside no declaration, and with a func
// as the next declaration.
func beforeFunc(f *ast.File, pos token.Pos) bool {
	if pos < f.Name.End() {
		return false
	}
	for _, d := range f.Decls {
		switch {
		case d.Pos() <= pos && pos < d.End():
			return false // inside a declaration (a body, a var block)
		case d.Pos() > pos:
			_, isFunc := d.(*ast.FuncDecl)
			return isFunc
		}
	}
	return false // the end of the file
}
