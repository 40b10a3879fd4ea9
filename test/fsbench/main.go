// Command fsbench measures a folder the way developers use bind mounts: sequential write
// and read of one large file, creating, stat-ing and deleting many small files, and a walk
// of a source tree as `git status` does (read every directory, lstat every entry). The
// benchmarks run it in a container against a shared host folder and against a volume on the
// machine's own disk, and print the ratios. It prints one "name value unit" line per figure.
package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"time"
)

func main() {
	dir := flag.String("dir", "", "folder to measure (a scratch folder is made in it and removed)")
	seqMB := flag.Int("seq-mb", 256, "size of the sequential file in MB (0: skip)")
	files := flag.Int("files", 5000, "small files to create, stat and delete (0: skip)")
	tree := flag.String("tree", "", "an existing tree to walk (see -mktree)")
	mktree := flag.Int("mktree", 0, "make a tree of this many files in -tree first (not timed)")
	flag.Parse()
	if *dir == "" && *tree != "" && *mktree > 0 {
		// Only make the tree (the host makes the shared one at its own speed).
		if err := MakeTree(*tree, *mktree); err != nil {
			log.Fatalf("fsbench: make tree: %v", err)
		}
		return
	}
	if *dir == "" {
		log.Fatal("fsbench: -dir is required")
	}
	scratch, err := os.MkdirTemp(*dir, "fsbench-")
	if err != nil {
		log.Fatalf("fsbench: %v", err)
	}
	defer os.RemoveAll(scratch)

	if *seqMB > 0 {
		seq(scratch, *seqMB)
	}
	if *files > 0 {
		small(scratch, *files)
	}
	if *tree != "" {
		if *mktree > 0 {
			if err := MakeTree(*tree, *mktree); err != nil {
				log.Fatalf("fsbench: make tree: %v", err)
			}
		}
		// Cold: the guest's caches are dropped first (a share keeps no metadata cache anyway).
		dropCaches()
		began := time.Now()
		n, err := walk(*tree)
		if err != nil {
			log.Fatalf("fsbench: walk: %v", err)
		}
		report("walk_entries_per_s", float64(n)/time.Since(began).Seconds(), "entries/s")
	}
}

// seq writes (and fsyncs) one file of mb MB, drops the guest's caches, and reads it back.
func seq(dir string, mb int) {
	path := filepath.Join(dir, "seq")
	f, err := os.Create(path)
	if err != nil {
		log.Fatalf("fsbench: %v", err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	began := time.Now()
	for i := 0; i < mb; i++ {
		if _, err := f.Write(buf); err != nil {
			log.Fatalf("fsbench: write: %v", err)
		}
	}
	if err := f.Sync(); err != nil {
		log.Fatalf("fsbench: fsync: %v", err)
	}
	f.Close()
	report("seq_write_MBps", float64(mb)*1.048576/time.Since(began).Seconds(), "MB/s")
	dropCaches()
	f, err = os.Open(path)
	if err != nil {
		log.Fatalf("fsbench: %v", err)
	}
	began = time.Now()
	n, err := io.CopyBuffer(io.Discard, f, buf)
	if err != nil {
		log.Fatalf("fsbench: read: %v", err)
	}
	f.Close()
	report("seq_read_MBps", float64(n)/1e6/time.Since(began).Seconds(), "MB/s")
	os.Remove(path)
}

// small creates n files of 100 bytes in one folder, stats each, then deletes each.
func small(dir string, n int) {
	d := filepath.Join(dir, "small")
	if err := os.Mkdir(d, 0o755); err != nil {
		log.Fatalf("fsbench: %v", err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = filepath.Join(d, fmt.Sprintf("f%05d.txt", i))
	}
	data := make([]byte, 100)
	timed("create_per_s", n, func(p string) error { return os.WriteFile(p, data, 0o644) }, names)
	timed("stat_per_s", n, func(p string) error { _, err := os.Lstat(p); return err }, names)
	timed("delete_per_s", n, os.Remove, names)
}

func timed(name string, n int, op func(string) error, paths []string) {
	began := time.Now()
	for _, p := range paths {
		if err := op(p); err != nil {
			log.Fatalf("fsbench: %s: %v", name, err)
		}
	}
	report(name, float64(n)/time.Since(began).Seconds(), "ops/s")
}

// MakeTree makes n files of 200 bytes in a tree shaped like a source repository: 20 top
// folders of 10 folders each, the files spread evenly over those 200 leaves.
func MakeTree(root string, n int) error {
	data := make([]byte, 200)
	for i := 0; i < n; i++ {
		d := filepath.Join(root, fmt.Sprintf("pkg%02d", i%20), fmt.Sprintf("sub%d", (i/20)%10))
		if i < 200 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file%05d.go", i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// walk reads every folder and lstats every entry, as `git status` does to find changes.
func walk(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// dropCaches asks the guest kernel to drop clean caches (it needs a privileged container)
// so reads measure the file system, not memory; it says when it could not.
func dropCaches() {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
		fmt.Printf("note could-not-drop-caches %v\n", err)
	}
}

func report(name string, v float64, unit string) { fmt.Printf("%s %.1f %s\n", name, v, unit) }
