package main

import (
	"path/filepath"
	"testing"
)

func TestMakeTreeIsWalkedWhole(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	if err := MakeTree(root, 400); err != nil {
		t.Fatal(err)
	}
	n, err := walk(root)
	if err != nil {
		t.Fatal(err)
	}
	// 400 files, 200 leaf folders, 20 top folders and the root.
	if n != 400+200+20+1 {
		t.Errorf("walk saw %d entries, want 621", n)
	}
}
