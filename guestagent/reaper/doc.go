// Package reaper owns wait4(-1) for the guest agent running as PID 1: it reaps every child,
// including orphans the kernel re-parents to init, and hands the exit status of the
// processes the agent started to whoever waits for them. Nothing else in the agent may call
// exec.Cmd.Wait or os.Process.Wait: they would race with the reaper for the same status.
// For the same reason a process has exactly one Reaper (tests too).
//
// The package is Linux-only; on other systems it holds only this comment.
package reaper
