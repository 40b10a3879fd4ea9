package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	img := setup(t)
	if _, err := cli(t, "create", "dev", "--arch", "amd64", "--cpus", "1", "--memory", "1GiB", "--image", img, "--share="); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, "version", "dev", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		CLI struct {
			Version string `json:"version"`
			Go      string `json:"go"`
		} `json:"cli"`
		Machine   string `json:"machine"`
		HostAgent *struct {
			Running bool `json:"running"`
		} `json:"host_agent"`
		Image *struct {
			Arch string `json:"arch"`
		} `json:"image"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version json: %v\n%s", err, out)
	}
	if v.CLI.Version == "" || !strings.HasPrefix(v.CLI.Go, "go") || v.Machine != "dev" ||
		v.HostAgent == nil || v.HostAgent.Running || v.Image == nil || v.Image.Arch != "amd64" {
		t.Errorf("version json = %s", out)
	}
	out, err = cli(t, "--version")
	if err != nil || !strings.Contains(out, "CLI:") || !strings.Contains(out, `Machine "default"`) {
		t.Errorf("--version: %v\n%s", err, out)
	}
}

func TestCompletionSuggestsMachineNames(t *testing.T) {
	img := setup(t)
	for _, n := range []string{"dev", "work"} {
		if _, err := cli(t, "create", n, "--arch", "amd64", "--cpus", "1", "--memory", "1GiB", "--image", img, "--share="); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"start", "stop", "restart", "status", "rm", "logs", "shell", "ports", "docker-env", "upgrade", "version"} {
		out, _ := cli(t, "__complete", c, "")
		if !strings.Contains(out, "dev\nwork\n") {
			t.Errorf("completion of `machine %s `: %q; want the machine names", c, out)
		}
		out, _ = cli(t, "__complete", c, "w")
		if strings.Contains(out, "dev") || !strings.Contains(out, "work") {
			t.Errorf("completion of `machine %s w`: %q; want only work", c, out)
		}
	}
	if out, _ := cli(t, "__complete", "create", ""); strings.Contains(out, "dev") {
		t.Errorf("completion of `machine create `: %q; a new machine needs a new name", out)
	}
}
