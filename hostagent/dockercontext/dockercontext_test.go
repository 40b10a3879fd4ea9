package dockercontext

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReadRemove(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	if err := s.Write("machine", "unix:///h/docker.sock", "machine default"); err != nil {
		t.Fatal(err)
	}
	host, err := s.Host("machine")
	if err != nil || host != "unix:///h/docker.sock" {
		t.Fatalf("Host = %q, %v", host, err)
	}
	if err := s.SetCurrent("machine"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("machine"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Host("machine"); err == nil {
		t.Error("context still there after Remove")
	}
	if cur, _ := s.Current(); cur != "" {
		t.Errorf("current context %q after removing it", cur)
	}
}

func TestMetaLayoutMatchesDockerCLI(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	s.Write("machine", "unix:///x", "")
	// The docker CLI finds a context in a folder named by the sha256 of its name.
	sum := sha256.Sum256([]byte("machine"))
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "contexts", "meta"))
	if len(entries) != 1 || entries[0].Name() != hex.EncodeToString(sum[:]) {
		t.Fatalf("meta folders %v", entries)
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "contexts", "meta", entries[0].Name(), "meta.json"))
	for _, want := range []string{`"Name":"machine"`, `"Endpoints":{"docker":{"Host":"unix:///x"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("meta.json %s lacks %s", b, want)
		}
	}
}

func TestSetCurrentKeepsOtherSettings(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	os.WriteFile(filepath.Join(s.Dir, "config.json"), []byte(`{"auths":{"r.example":{"auth":"x"}},"currentContext":"other"}`), 0o600)
	if err := s.SetCurrent("machine"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "config.json"))
	if !strings.Contains(string(b), `"auth": "x"`) || !strings.Contains(string(b), `"currentContext": "machine"`) {
		t.Errorf("config.json = %s", b)
	}
}

func TestCorruptConfigIsNotOverwritten(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	p := filepath.Join(s.Dir, "config.json")
	os.WriteFile(p, []byte(`{broken`), 0o600)
	if err := s.SetCurrent("machine"); err == nil {
		t.Fatal("SetCurrent on a corrupt config succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != `{broken` {
		t.Errorf("corrupt config rewritten: %s", b)
	}
}
