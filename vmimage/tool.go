package vmimage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// toolOutputLines is how many lines of a failed tool's output its error carries.
const toolOutputLines = 20

// toolOutputKeep bounds the output kept while a tool runs (mmdebstrap can print megabytes);
// only the tail is ever shown.
const toolOutputKeep = 64 << 10

// ToolError is a host tool (mmdebstrap, tar, mksquashfs, depmod, go, ...) that failed during
// an image build. Its message names the command line and ends with the last lines of what the
// tool printed. It deliberately does not unwrap to the *exec.ExitError: the tool's exit status
// is the tool's, not the machine command's.
type ToolError struct {
	// Args is the command line, Args[0] the program.
	Args []string
	// Dir is the working directory, when not the current one.
	Dir string
	// Status is how the tool ended ("exit status 25", "signal: terminated") or why it did not
	// start.
	Status string
	// Output is the tail of the tool's combined stdout and stderr.
	Output string
}

func (e *ToolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed (%s)", quoteArgs(e.Args), e.Status)
	if e.Dir != "" {
		fmt.Fprintf(&b, " in %s", e.Dir)
	}
	if e.Output == "" {
		b.WriteString("; it printed nothing")
		return b.String()
	}
	fmt.Fprintf(&b, "; its last output:\n%s", indent(e.Output))
	return b.String()
}

// runTool runs cmd, keeping the tail of its combined output, and returns a *ToolError when it
// does not succeed. cmd's Stdout and Stderr must be unset.
func runTool(cmd *exec.Cmd) error {
	tail := &tailBuffer{max: toolOutputKeep}
	cmd.Stdout, cmd.Stderr = tail, tail
	if err := cmd.Run(); err != nil {
		return toolError(cmd, err, tail.String())
	}
	return nil
}

// runToolOutput runs cmd and returns its stdout; on failure the *ToolError carries the tail
// of its stderr.
func runToolOutput(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	tail := &tailBuffer{max: toolOutputKeep}
	cmd.Stdout, cmd.Stderr = &out, tail
	if err := cmd.Run(); err != nil {
		return nil, toolError(cmd, err, tail.String())
	}
	return out.Bytes(), nil
}

func toolError(cmd *exec.Cmd, err error, output string) *ToolError {
	status := err.Error()
	var ee *exec.ExitError
	if !errors.As(err, &ee) && cmd.ProcessState == nil {
		status = "did not start: " + status
	}
	return &ToolError{Args: cmd.Args, Dir: cmd.Dir, Status: status, Output: lastLines([]byte(output), toolOutputLines)}
}

func lastLines(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// quoteArgs shows a command line the way a user could paste it into a shell.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

var _ io.Writer = (*tailBuffer)(nil)

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
