package main

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/machine-run/machine/hostagent"
	"github.com/machine-run/machine/hostagent/store"
)

// machineName returns the NAME argument or "default".
func machineName(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return store.DefaultName
}

// openMachine opens the store and a machine in it, validating the name.
func openMachine(name string) (*store.Store, *store.Machine, error) {
	s, err := store.Open()
	if err != nil {
		return nil, nil, err
	}
	m, err := s.Machine(name)
	if err != nil {
		return nil, nil, err
	}
	return s, m, nil
}

// existingMachine opens a machine that must exist, with its config.
func existingMachine(name string) (*store.Machine, *store.Config, error) {
	_, m, err := openMachine(name)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := m.LoadConfig()
	if err != nil {
		return nil, nil, err
	}
	return m, cfg, nil
}

// agentRunning reports whether a host agent owns the machine. The agent's lock, not its pid
// file, is the proof: the OS drops the lock when the agent dies.
func agentRunning(m *store.Machine) bool { return store.Held(m.AgentLock()) }

// cleanStale removes what a crashed host agent left: its pid file and sockets. Only call it
// when agentRunning is false.
func cleanStale(m *store.Machine) {
	for _, p := range []string{m.PidFile(), m.ControlSocket(), m.DockerSocket()} {
		os.Remove(p)
	}
}

// errNotRunning says how to start a machine.
func errNotRunning(name string) error {
	return fmt.Errorf("machine %q is not running: start it with `machine start%s`", name, nameArg(name))
}

// nameArg is the ' NAME' to append to a command in hints: empty for the default machine,
// so a hint reads `machine start`, not `machine start `.
func nameArg(name string) string {
	if name == store.DefaultName {
		return ""
	}
	return " " + name
}

// agentClient returns a client for a running machine's host agent.
func agentClient(m *store.Machine) (*hostagent.Client, error) {
	if !agentRunning(m) {
		return nil, errNotRunning(m.Name)
	}
	return hostagent.NewClient(m.ControlSocket()), nil
}

func defaultDriver() string {
	if runtime.GOOS == "darwin" && vzAvailable && checkVZ() == nil {
		return "vz"
	}
	return "qemu"
}

// guestExit is the status of a command run in the guest (`machine shell -- CMD`): machine
// exits with it. Its message, if any, has been printed already.
type guestExit struct{ code int }

func (e guestExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func isCanceled(ctx context.Context) bool { return ctx.Err() != nil }
