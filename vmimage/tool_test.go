package vmimage

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestRunToolFailureNamesCommandAndOutput(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs sh")
	}
	// 30 lines of output, then an error on stderr and exit status 25: the error keeps the
	// last 20 lines, in order, and says which command it was.
	script := `for i in $(seq 1 30); do echo "line $i"; done; echo 'boom: install arch-test' >&2; exit 25`
	err := runTool(exec.CommandContext(context.Background(), "sh", "-c", script))
	var te *ToolError
	if !errors.As(err, &te) {
		t.Fatalf("runTool = %v (%T), want a *ToolError", err, err)
	}
	msg := err.Error()
	for _, want := range []string{"sh -c '" + script[:10], "exit status 25", "boom: install arch-test", "line 30", "line 12"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "line 11\n") {
		t.Errorf("error keeps more than %d lines:\n%s", toolOutputLines, msg)
	}
	// The tool's exit status must not leak to callers that map errors to exit codes.
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Errorf("ToolError unwraps to *exec.ExitError (status %d): the tool's status would become ours", ee.ExitCode())
	}
	var coder interface{ ExitCode() int }
	if errors.As(err, &coder) {
		t.Errorf("ToolError carries an ExitCode() %d", coder.ExitCode())
	}
}

func TestRunToolMissingProgramAndSilentFailure(t *testing.T) {
	err := runTool(exec.Command("machine-no-such-tool", "--flag"))
	if err == nil || !strings.Contains(err.Error(), "machine-no-such-tool --flag failed (did not start") {
		t.Errorf("missing tool: %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	err = runTool(exec.Command("false"))
	if err == nil || !strings.Contains(err.Error(), "false failed (exit status 1); it printed nothing") {
		t.Errorf("silent failure: %v", err)
	}
}

func TestRunToolOutputKeepsStdoutApart(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs sh")
	}
	out, err := runToolOutput(exec.Command("sh", "-c", "echo data; echo noise >&2"))
	if err != nil || string(out) != "data\n" {
		t.Fatalf("runToolOutput = %q, %v", out, err)
	}
	_, err = runToolOutput(exec.Command("sh", "-c", "echo data; echo 'bad module' >&2; exit 3"))
	var te *ToolError
	if !errors.As(err, &te) || te.Output != "bad module" {
		t.Errorf("runToolOutput failure: %v", err)
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := &tailBuffer{max: 10}
	for i := 0; i < 100; i++ {
		tb.Write([]byte(strconv.Itoa(i % 10)))
	}
	if got := tb.String(); got != "0123456789" {
		t.Errorf("tail = %q", got)
	}
}

func TestQuoteArgs(t *testing.T) {
	got := quoteArgs([]string{"mmdebstrap", "--include=a,b", "", "it's", "/tmp/x y"})
	want := `mmdebstrap --include=a,b '' 'it'\''s' '/tmp/x y'`
	if got != want {
		t.Errorf("quoteArgs = %s, want %s", got, want)
	}
}
