package vz

import "log/slog"

// Options are the vz-specific settings that driver.Config does not carry. Rosetta is
// machine-level (driver.Config.Rosetta): it needs Apple silicon and macOS 13 or newer, with
// Rosetta installed (softwareupdate --install-rosetta).
type Options struct {
	// OnState, if set, is called for every state change of the VM, in order, from a single
	// goroutine. It must not block.
	OnState func(State)
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
}

// State is a VM state as the host agent sees it.
type State string

// States the VM reports. A VM that reaches StateStopped or StateError is finished.
const (
	StateStopped   State = "stopped"
	StateStarting  State = "starting"
	StateRunning   State = "running"
	StatePausing   State = "pausing"
	StatePaused    State = "paused"
	StateResuming  State = "resuming"
	StateStopping  State = "stopping"
	StateSaving    State = "saving"
	StateRestoring State = "restoring"
	StateError     State = "error"
	StateUnknown   State = "unknown"
)
