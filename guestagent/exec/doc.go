// Package exec serves api.ServiceExec: it reads one api.ExecRequest line, runs the command
// (on a PTY when asked) through the PID 1 reaper, and speaks the frame protocol of
// guestagent/api/exec.go until the last FrameExit.
//
// The package is Linux-only; on other systems it holds only this comment.
package exec
