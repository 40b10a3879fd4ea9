package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// hostMemoryMiB reads MemTotal; 0 when unknown.
func hostMemoryMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kib / 1024
		}
	}
	return 0
}
