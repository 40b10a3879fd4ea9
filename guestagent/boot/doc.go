// Package boot does stage 2's system setup as PID 1 in the real root: the base mounts,
// kernel modules, the persistent data disk (formatted only when provably blank), hostname,
// network and clock, and the matching teardown at shutdown (stop stray processes, sync,
// unmount, power off).
//
// The package is Linux-only except DetectDisk, which is portable so it can be tested and
// reused anywhere.
package boot
