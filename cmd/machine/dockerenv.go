package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/dockercontext"
	"github.com/machine-run/machine/hostagent/store"
)

func newDockerEnvCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "docker-env [NAME]",
		Short: "Print shell exports that point Docker tools at a machine",
		Long:  "Print shell exports that point Docker tools at a machine, for tools that ignore docker contexts:\n  eval \"$(machine docker-env)\"",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, _, err := existingMachine(machineName(args))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export DOCKER_HOST=%s\n", shellQuote(dockerHost(m)))
			if !agentRunning(m) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: machine %q is not running; start it with `machine start%s`\n", m.Name, nameArg(m.Name))
			}
			return nil
		},
	}
}

func dockerHost(m *store.Machine) string { return dockerHostFor(runtime.GOOS, m) }

// dockerHostFor is the DOCKER_HOST of a machine on host OS goos: its named pipe on Windows
// (npipe:////./pipe/machine-<name>, the docker CLI's spelling of \\.\pipe\...), its
// docker.sock elsewhere.
func dockerHostFor(goos string, m *store.Machine) string {
	if goos == "windows" {
		return "npipe://" + strings.ReplaceAll(hostagent.DockerPipe(m.Name), `\`, "/")
	}
	return "unix://" + m.DockerSocket()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeDockerContext points the machine's docker context at its socket, and makes it the
// current one when asked.
func writeDockerContext(m *store.Machine, activate bool) error {
	dc, err := dockercontext.Default()
	if err != nil {
		return err
	}
	name := hostagent.ContextName(m.Name)
	if err := dc.Write(name, dockerHost(m), "machine "+m.Name); err != nil {
		return err
	}
	if activate {
		return dc.SetCurrent(name)
	}
	return nil
}

func removeDockerContext(m *store.Machine) error {
	dc, err := dockercontext.Default()
	if err != nil {
		return err
	}
	return dc.Remove(hostagent.ContextName(m.Name))
}

func printDockerHint(out io.Writer, m *store.Machine, activated bool) {
	name := hostagent.ContextName(m.Name)
	if activated {
		fmt.Fprintf(out, "The docker context %q is now current: run `docker ps`.\n", name)
		return
	}
	if dc, err := dockercontext.Default(); err == nil {
		if cur, _ := dc.Current(); cur == name {
			fmt.Fprintf(out, "Docker uses this machine (context %q): run `docker ps`.\n", name)
			return
		}
	}
	fmt.Fprintf(out, "Use it with:\n  docker --context %s ps\nor make it the default:\n  docker context use %s\nor, for tools that ignore contexts:\n  export DOCKER_HOST=%s\n", name, name, dockerHost(m))
}

// lastEvent returns the last event the host agent recorded, if any.
func lastEvent(m *store.Machine) *hostagent.Event {
	f, err := os.Open(m.EventsPath())
	if err != nil {
		return nil
	}
	defer f.Close()
	var last *hostagent.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e hostagent.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			last = &e
		}
	}
	return last
}
