package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needVZ skips when github.com/Code-Hex/vz/v3 is not in the module cache: the fixtures
// import it and go list would report them broken for a reason the test is not about.
func needVZ(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/Code-Hex/vz/v3").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("github.com/Code-Hex/vz/v3 is not in the module cache (run `go mod download github.com/Code-Hex/vz/v3`): %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("github.com/Code-Hex/vz/v3 is not in the module cache (run `go mod download github.com/Code-Hex/vz/v3`): %v", err)
	}
}

// markedLines returns "file:line" for every line of the fixture folder marked "// ERROR".
func markedLines(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			if strings.Contains(sc.Text(), "// ERROR") {
				want = append(want, fmt.Sprintf("%s:%d", f, n))
			}
		}
	}
	slices.Sort(want)
	return want
}

// positions returns "file:line" of every error, once per line (a line can carry a go list
// error and the type error it causes).
func positions(res *result) []string {
	var got []string
	for _, d := range res.Errors {
		got = append(got, fmt.Sprintf("%s:%d", d.File, d.Line))
	}
	slices.Sort(got)
	return slices.Compact(got)
}

// TestFixtureMessages: each kind of error says what go build would say.
func TestFixtureMessages(t *testing.T) {
	needVZ(t)
	for dir, want := range map[string]string{
		"testdata/parseerror": "missing ','",
		"testdata/directives": "misplaced compiler directive //go:noinline",
		"testdata/nobody":     "missing function body for missing",
		"testdata/depserror":  "no required module provides package example.invalid/nosuch/pkg",
	} {
		res, err := check(context.Background(), "", "arm64", []string{"./" + dir})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		found := false
		for _, d := range res.Errors {
			found = found || strings.Contains(d.Msg, want)
		}
		if !found {
			t.Errorf("%s: no error says %q: %v", dir, want, res.Errors)
		}
	}
}

func TestFixturesReportExactlyTheMarkedLines(t *testing.T) {
	needVZ(t)
	for _, fixture := range []struct {
		dir   string
		count int // marked lines, so a fixture edit cannot silently weaken the test
	}{
		{"testdata/broken", 3},
		{"testdata/brokenvariants", 2},
		{"testdata/parseerror", 1},
		{"testdata/directives", 5},
		{"testdata/nobody", 2},
		{"testdata/depserror", 1},
		{"testdata/withasm", 0},
	} {
		want := markedLines(t, fixture.dir)
		if len(want) != fixture.count {
			t.Fatalf("%s has %d ERROR lines, want %d", fixture.dir, len(want), fixture.count)
		}
		for _, arch := range []string{"arm64", "amd64"} {
			res, err := check(context.Background(), "", arch, []string{"./" + fixture.dir})
			if err != nil {
				t.Fatalf("%s darwin/%s: %v", fixture.dir, arch, err)
			}
			if got := positions(res); !slices.Equal(got, want) {
				t.Errorf("%s darwin/%s: errors at %v, want %v; errors:\n%v", fixture.dir, arch, got, want, res.Errors)
			}
		}
	}
}

func TestGoodFixtureIsClean(t *testing.T) {
	needVZ(t)
	for _, arch := range []string{"arm64", "amd64"} {
		res, err := check(context.Background(), "", arch, []string{"./testdata/good"})
		if err != nil {
			t.Fatalf("darwin/%s: %v", arch, err)
		}
		if len(res.Errors) != 0 {
			t.Errorf("darwin/%s: unexpected errors: %v", arch, res.Errors)
		}
		// good, good [good.test] and good_test [good.test]: the tests were type-checked.
		if res.MainPackages != 3 {
			t.Errorf("darwin/%s: %d main-module packages checked, want 3", arch, res.MainPackages)
		}
		if res.Packages <= res.MainPackages {
			t.Errorf("darwin/%s: dependencies were not checked (%d packages)", arch, res.Packages)
		}
	}
}

func TestRunExitStatusAndSummary(t *testing.T) {
	needVZ(t)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"./testdata/broken"}, &out, &errOut); code != 1 {
		t.Errorf("run on broken fixture = %d, want 1; stderr: %s", code, errOut.String())
	}
	for _, arch := range []string{"arm64", "amd64"} {
		if !strings.Contains(out.String(), "darwin/"+arch+": ") || !strings.Contains(out.String(), "3 errors") {
			t.Errorf("output lacks the darwin/%s summary with 3 errors:\n%s", arch, out.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"-arch", "arm64", "./testdata/good"}, &out, &errOut); code != 0 {
		t.Errorf("run on good fixture = %d, want 0; output:\n%s%s", code, out.String(), errOut.String())
	}
	if code := run(context.Background(), []string{"-arch", "386", "./testdata/good"}, &out, &errOut); code != 2 {
		t.Errorf("run with an unknown arch = %d, want 2", code)
	}
}
