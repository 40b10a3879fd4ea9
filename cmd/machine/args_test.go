package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/vmimage"
)

// runCLI runs the CLI as main does and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// groups returns every command group (a command with subcommands) in the tree.
func groups(c *cobra.Command) []*cobra.Command {
	var gs []*cobra.Command
	if c.HasSubCommands() {
		gs = append(gs, c)
	}
	for _, sub := range c.Commands() {
		gs = append(gs, groups(sub)...)
	}
	return gs
}

func TestUnknownSubcommandOfEveryGroup(t *testing.T) {
	setup(t)
	gs := groups(newRootCommand())
	if len(gs) < 3 { // machine, image, completion at least
		t.Fatalf("found only %d command groups", len(gs))
	}
	for _, g := range gs {
		path := strings.Fields(g.CommandPath())[1:]
		args := append(path, "frobnicate")
		code, stdout, stderr := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("machine %s: exit %d, want %d (stdout %q)", strings.Join(args, " "), code, exitUsage, stdout)
		}
		if !strings.Contains(stderr, `unknown command "frobnicate" for "`+g.CommandPath()+`"`) {
			t.Errorf("machine %s: stderr %q does not name the unknown command", strings.Join(args, " "), stderr)
		}
		for _, sub := range g.Commands() {
			if sub.IsAvailableCommand() && !strings.Contains(stderr, sub.Name()) {
				t.Errorf("machine %s: stderr %q does not list %q", strings.Join(args, " "), stderr, sub.Name())
			}
		}
		if strings.Contains(stderr, "hostagent") {
			t.Errorf("machine %s: lists the hidden hostagent command: %q", strings.Join(args, " "), stderr)
		}
	}
}

func TestUnknownSubcommandsAndStrayArgs(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"foo"}, `unknown command "foo" for "machine"; valid commands: `},
		{[]string{"imag"}, `did you mean "image"?`},
		{[]string{"image", "push", "ref"}, `unknown command "push" for "machine image"; valid commands: build`},
		{[]string{"image", "frob"}, `valid commands: build`},
		{[]string{"ls", "extra"}, `unknown command "extra" for "machine ls"`},
		{[]string{"image", "build", "extra"}, `unknown command "extra" for "machine image build"`},
		{[]string{"status", "a", "b"}, "machine status: accepts at most 1 arg(s), received 2"},
		{[]string{"create", "a", "b"}, "machine create: accepts at most 1 arg(s), received 2"},
		{[]string{"hostagent"}, "machine hostagent: accepts 1 arg(s), received 0"},
		{[]string{"help", "frob"}, `unknown help topic "frob"`},
		{[]string{"ls", "--bogus"}, "unknown flag: --bogus"},
	} {
		if len(tc.args) > 1 && tc.args[0] == "image" && tc.args[1] == "push" && hasCommand("image", "push") {
			continue // the OCI push exists now: its own tests cover its arguments
		}
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("machine %s: exit %d, stderr %q; want exit %d and %q (stdout %q)",
				strings.Join(tc.args, " "), code, stderr, exitUsage, tc.want, stdout)
		}
	}
}

func hasCommand(path ...string) bool {
	c, rest, err := newRootCommand().Find(path)
	return err == nil && len(rest) == 0 && c.Name() == path[len(path)-1]
}

func TestGroupWithoutSubcommandShowsHelp(t *testing.T) {
	setup(t)
	for _, args := range [][]string{nil, {"image"}, {"help", "image"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK || !strings.Contains(stdout, "Usage:") || stderr != "" {
			t.Errorf("machine %v: exit %d, stdout %q, stderr %q; want help and exit 0", args, code, stdout, stderr)
		}
	}
}

// Every command declares what arguments it takes: a command without an Args check would
// silently accept stray ones.
func TestEveryCommandChecksArgs(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Args == nil {
			t.Errorf("%q has no Args check", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
}

func TestExitCodes(t *testing.T) {
	toolErr := &vmimage.ToolError{Args: []string{"mmdebstrap", "--arch=arm64"}, Status: "exit status 25", Output: "E: install arch-test"}
	realExit := exec.Command("sh", "-c", "exit 25").Run()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("machine \"x\" does not exist"), exitError},
		{guestExit{7}, 7},
		{fmt.Errorf("machine %q: %w", "x", guestExit{3}), 3},
		{fmt.Errorf("build arm64 image: %w", toolErr), exitTool},
		{usageError{errors.New("unknown command")}, exitUsage},
		{fmt.Errorf("machine %q: %w", "x", errRolledBack{"upgrade rolled back: ..."}), exitRolledBack},
		// Another program's exit status is never passed through as ours.
		{fmt.Errorf("something ran: %w", realExit), exitError},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if code, _, stderr := runCLI(t, "status", "nosuch"); code != exitError || !strings.Contains(stderr, "machine: ") {
		t.Errorf("status of a missing machine: exit %d, stderr %q", code, stderr)
	}
}

// The case: a build step fails (mmdebstrap without arch-test, exit 25). machine must
// print the command and what it said, and exit with its own code, not 25.
func TestImageBuildToolFailureExitCode(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("image builds run on Linux as root")
	}
	bin := t.TempDir()
	fake := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"tar", "mksquashfs", "depmod", "xz", "zstd", "update-alternatives"} {
		fake(tool, "exit 0")
	}
	fake("mmdebstrap", `echo "I: automatically chosen mode: root"; echo "E: install arch-test for foreign architecture support" >&2; exit 25`)
	t.Setenv("PATH", bin)
	t.Setenv("MACHINE_CACHE", t.TempDir())
	agent := filepath.Join(t.TempDir(), "agent")
	os.WriteFile(agent, []byte("not really an agent"), 0o755)

	code, _, stderr := runCLI(t, "image", "build", "--agent", agent)
	if code != exitTool {
		t.Errorf("exit %d, want machine's own %d (25 would be mmdebstrap's)", code, exitTool)
	}
	for _, want := range []string{"mmdebstrap --mode=root --variant=extract", "failed (exit status 25)", "E: install arch-test for foreign architecture support", "I: automatically chosen mode"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
