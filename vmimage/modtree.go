package vmimage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// moduleTree is the moduleGraph of an unpacked kernel's /usr/lib/modules/<kver>: file
// names index the modules, and only the modules asked about are decompressed and parsed.
type moduleTree struct {
	ctx     context.Context
	dir     string
	files   map[string]string // module name -> path relative to dir
	aliases map[string]string // exact alias -> module name, from modules.alias when present
	builtin map[string]bool
	data    map[string][]byte // decompressed .ko, by name
}

func openModuleTree(ctx context.Context, dir string) (*moduleTree, error) {
	t := &moduleTree{ctx: ctx, dir: dir, files: map[string]string{}, aliases: map[string]string{}, data: map[string][]byte{}}
	b, err := readBuiltin(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	t.builtin = b
	err = filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(d.Name(), ".ko") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		t.files[modNameFromPath(p)] = rel
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	t.readAliases(filepath.Join(dir, "modules.alias"))
	return t, nil
}

// readAliases maps plain aliases ("alias xt_MASQUERADE xt_nat") to module names so a wanted
// name that lives under another module's file still resolves. Wildcard aliases are ignored.
func (t *moduleTree) readAliases(path string) {
	f, err := os.Open(path)
	if err != nil {
		return // optional: depmod may not have run yet
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "alias" && !strings.ContainsAny(fields[1], "*?[:") {
			t.aliases[modName(fields[1])] = modName(fields[2])
		}
	}
}

// canonical maps a wanted name to the module providing it.
func (t *moduleTree) canonical(name string) string {
	name = modName(name)
	if _, ok := t.files[name]; ok || t.builtin[name] {
		return name
	}
	if real, ok := t.aliases[name]; ok {
		return real
	}
	return name
}

func (t *moduleTree) Has(name string) bool     { _, ok := t.files[name]; return ok }
func (t *moduleTree) Builtin(name string) bool { return t.builtin[name] }

func (t *moduleTree) Info(name string) (modinfo, error) {
	b, err := t.Module(name)
	if err != nil {
		return modinfo{}, err
	}
	return parseModinfo(bytes.NewReader(b))
}

// Module returns the uncompressed contents of module name, without its signature.
func (t *moduleTree) Module(name string) ([]byte, error) {
	if b, ok := t.data[name]; ok {
		return b, nil
	}
	rel, ok := t.files[name]
	if !ok {
		return nil, fmt.Errorf("module %s: no file", name)
	}
	b, err := decompressModule(t.ctx, filepath.Join(t.dir, rel))
	if err == nil {
		b, err = stripSignature(b)
	}
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", name, err)
	}
	t.data[name] = b
	return b, nil
}

// UncompressedPath is where module name goes in a tree of uncompressed modules.
func (t *moduleTree) UncompressedPath(name string) string {
	rel := t.files[name]
	if i := strings.LastIndex(rel, ".ko"); i >= 0 {
		rel = rel[:i+len(".ko")]
	}
	return filepath.ToSlash(rel)
}

// resolve resolves want against this tree; see resolveModules.
func (t *moduleTree) resolve(want []string) ([]string, error) {
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = t.canonical(w)
	}
	return resolveModules(t, names)
}

// decompressModule reads a .ko, .ko.gz, .ko.xz or .ko.zst file.
func decompressModule(ctx context.Context, path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(path, ".ko.xz"):
		return runOutput(ctx, "xz", "-dc", path)
	case strings.HasSuffix(path, ".ko.zst"):
		return runOutput(ctx, "zstd", "-dcq", path)
	}
	return nil, fmt.Errorf("%s: unknown module compression", path)
}

func runOutput(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runToolOutput(exec.CommandContext(ctx, name, args...))
}
