// Command machine-guestagent is the whole guest side of machine in one static binary. Run as
// /init in the initramfs it is stage 1 (mount the root, switch_root); exec'd from the root
// as api.AgentPath it is stage 2, PID 1 for the VM's life: system setup, the host channel
// and its services, containerd and dockerd supervision, and clean shutdown.
package main

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"
