package vsockconn

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVZLayout guards Wrap's one assumption about vz: VirtioSocketConnection keeps its socket
// in a field `rawConn net.Conn` and has no CloseWrite of its own. It reads the vz source of
// the version go.mod pins, so a vz upgrade that changes the layout fails here, on any OS.
func TestVZLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/Code-Hex/vz/v3").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("github.com/Code-Hex/vz/v3 is not in the module cache (go mod download): %v", err)
	}
	src := filepath.Join(dir, "socket.go")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("vz source not downloaded (go mod download github.com/Code-Hex/vz/v3): %v", err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), src, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var fieldType string
	found := false
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				ts, ok := spec.(*ast.TypeSpec)
				if !ok || ts.Name.Name != "VirtioSocketConnection" {
					continue
				}
				found = true
				for _, field := range ts.Type.(*ast.StructType).Fields.List {
					for _, name := range field.Names {
						if name.Name == "rawConn" {
							if sel, ok := field.Type.(*ast.SelectorExpr); ok {
								fieldType = sel.X.(*ast.Ident).Name + "." + sel.Sel.Name
							}
						}
					}
				}
			}
		case *ast.FuncDecl:
			if d.Recv != nil && d.Name.Name == "CloseWrite" {
				t.Errorf("vz now has %s.CloseWrite: use it instead of vsockconn.Wrap", recvName(d))
			}
		}
	}
	if !found {
		t.Fatalf("%s: no VirtioSocketConnection type", src)
	}
	if fieldType != "net.Conn" {
		t.Fatalf("%s: VirtioSocketConnection.rawConn is %q, want net.Conn: update Wrap", src, fieldType)
	}
}

func recvName(d *ast.FuncDecl) string {
	if star, ok := d.Recv.List[0].Type.(*ast.StarExpr); ok {
		return "*" + star.X.(*ast.Ident).Name
	}
	return d.Recv.List[0].Type.(*ast.Ident).Name
}
