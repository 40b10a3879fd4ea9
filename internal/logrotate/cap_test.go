package logrotate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCappedKeepsTheStartAndTheLatest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hostagent.log")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &Capped{F: f, Max: 4096, Head: 512}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(c, "line %04d of the host agent's log\n", i) // 34 bytes
	}
	b, _ := os.ReadFile(p)
	s := string(b)
	if len(b) > 4096 {
		t.Errorf("log is %d bytes, want at most 4096", len(b))
	}
	if !strings.HasPrefix(s, "line 0000 ") {
		t.Errorf("the start of the boot was dropped: %.60q", s)
	}
	if !strings.HasSuffix(s, "line 0999 of the host agent's log\n") {
		t.Errorf("the latest line is missing: ...%q", s[len(s)-60:])
	}
	if !strings.Contains(s, "bytes of this log dropped here") {
		t.Error("no line says what was dropped")
	}
}
