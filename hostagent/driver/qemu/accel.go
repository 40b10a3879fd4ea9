package qemu

import (
	"bytes"
	"fmt"
)

// Probe reads the host facts accelerator detection needs. Fields are functions so tests can
// describe any host.
type Probe struct {
	ReadFile func(name string) ([]byte, error)
	// Exists reports whether a path exists.
	Exists func(name string) bool
	// OpenRW reports whether a device can be opened for reading and writing.
	OpenRW func(name string) bool
	// HVFSupported reports macOS's kern.hv_support.
	HVFSupported func() bool
}

// DetectAccel picks the accelerator for a guest architecture on this host and says why.
// Hardware acceleration needs the guest to match the host architecture. On Linux a /dev/kvm
// node alone is not enough: some sandboxes expose a paravirtual KVM that cannot run normal
// guest kernels, so on x86 the CPU must also advertise vmx or svm and kvm_intel or kvm_amd
// must be loaded.
func DetectAccel(goos, hostArch, guestArch string, p Probe) (accel, why string) {
	if hostArch != guestArch {
		return AccelTCG, fmt.Sprintf("emulating %s on a %s host", guestArch, hostArch)
	}
	switch goos {
	case "linux":
		if !p.OpenRW("/dev/kvm") {
			return AccelTCG, "/dev/kvm is missing or not accessible"
		}
		if hostArch == "amd64" {
			cpuinfo, err := p.ReadFile("/proc/cpuinfo")
			if err != nil || !hasCPUFlag(cpuinfo, "vmx", "svm") {
				return AccelTCG, "the CPU does not expose hardware virtualization (no vmx/svm flag)"
			}
			if !p.Exists("/sys/module/kvm_intel") && !p.Exists("/sys/module/kvm_amd") {
				return AccelTCG, "/dev/kvm is not backed by kvm_intel or kvm_amd"
			}
		}
		return AccelKVM, "hardware virtualization (KVM)"
	case "darwin":
		if p.HVFSupported != nil && p.HVFSupported() {
			return AccelHVF, "Hypervisor.framework"
		}
		return AccelTCG, "Hypervisor.framework is not available"
	case "windows":
		// QEMU falls back to TCG itself (with a warning) when WHPX is not enabled; see Args.
		return AccelWHPX, "Windows Hypervisor Platform"
	}
	return AccelTCG, "no known accelerator on " + goos
}

func hasCPUFlag(cpuinfo []byte, flags ...string) bool {
	for _, line := range bytes.Split(cpuinfo, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(bytes.TrimSpace(k)) != "flags" {
			continue
		}
		for _, f := range bytes.Fields(v) {
			for _, want := range flags {
				if string(f) == want {
					return true
				}
			}
		}
	}
	return false
}
