// Package dockercontext writes and removes docker CLI contexts in the CLI's own context store
// ($DOCKER_CONFIG or ~/.docker), without running the docker CLI, which may not be installed.
package dockercontext

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/machine-run/machine/internal/atomicfile"
)

// Store is a docker CLI configuration folder.
type Store struct{ Dir string }

// Default returns $DOCKER_CONFIG or ~/.docker.
func Default() (*Store, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return &Store{Dir: d}, nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("docker config folder: %w", err)
	}
	return &Store{Dir: filepath.Join(h, ".docker")}, nil
}

// The docker CLI keeps each context in a folder named by the sha256 of its name.
func (s *Store) metaDir(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.Dir, "contexts", "meta", hex.EncodeToString(sum[:]))
}

type meta struct {
	Name      string                    `json:"Name"`
	Metadata  map[string]any            `json:"Metadata"`
	Endpoints map[string]dockerEndpoint `json:"Endpoints"`
}

type dockerEndpoint struct {
	Host          string `json:"Host"`
	SkipTLSVerify bool   `json:"SkipTLSVerify"`
}

// Write creates or updates context name pointing at host (e.g. unix:///path/docker.sock).
func (s *Store) Write(name, host, description string) error {
	dir := s.metaDir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("docker context %q: %w", name, err)
	}
	b, err := json.Marshal(meta{
		Name:      name,
		Metadata:  map[string]any{"Description": description},
		Endpoints: map[string]dockerEndpoint{"docker": {Host: host}},
	})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "meta.json"), b, 0o644); err != nil {
		return fmt.Errorf("docker context %q: %w", name, err)
	}
	return nil
}

// Host returns the docker endpoint of context name.
func (s *Store) Host(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.metaDir(name), "meta.json"))
	if err != nil {
		return "", fmt.Errorf("docker context %q: %w", name, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("docker context %q: %w", name, err)
	}
	return m.Endpoints["docker"].Host, nil
}

// Remove deletes context name; if it was the current context, the CLI falls back to default.
func (s *Store) Remove(name string) error {
	if err := os.RemoveAll(s.metaDir(name)); err != nil {
		return fmt.Errorf("docker context %q: %w", name, err)
	}
	if cur, _ := s.Current(); cur == name {
		return s.SetCurrent("")
	}
	return nil
}

// Current returns the CLI's current context ("" for the default).
func (s *Store) Current() (string, error) {
	cfg, err := s.readConfig()
	if err != nil {
		return "", err
	}
	cur, _ := cfg["currentContext"].(string)
	return cur, nil
}

// SetCurrent makes name the current context ("" resets it), keeping every other setting in
// config.json as it is.
func (s *Store) SetCurrent(name string) error {
	cfg, err := s.readConfig()
	if err != nil {
		return err
	}
	if name == "" {
		delete(cfg, "currentContext")
	} else {
		cfg["currentContext"] = name
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.Dir, "config.json"), append(b, '\n'), 0o600)
}

func (s *Store) readConfig() (map[string]any, error) {
	p := filepath.Join(s.Dir, "config.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(b, &cfg); err != nil {
		// Never overwrite a config we cannot read: the user's credentials may be in it.
		return nil, fmt.Errorf("docker config %s is not valid JSON (fix or remove it): %w", p, err)
	}
	return cfg, nil
}
