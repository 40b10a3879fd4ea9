// Package engine supervises the container engine inside the guest: containerd and dockerd
// run as children of PID 1 (started through the reaper), are restarted with backoff when they
// crash, are probed for readiness (containerd's socket, dockerd's /_ping) only while starting,
// and are stopped in order at shutdown so containers get their stop grace.
//
// The package is Linux-only; on other systems it holds only this comment.
package engine
