// Package vz is the macOS driver: it boots the guest with Apple's Virtualization.framework
// through Code-Hex/vz/v3 (cgo) and reaches the guest agent over virtio vsock.
//
// The VM is a direct Linux kernel boot (uncompressed Image on arm64) with the read-only root
// image as /dev/vda, the data disk as /dev/vdb, NAT networking with a MAC derived from the
// machine name, a virtio console (hvc0) logged to a file, entropy, a memory balloon, vsock,
// one virtiofs device per share and, on Apple silicon, an optional Rosetta share.
//
// Only the darwin files use cgo and vz; the files without a build constraint hold the pure
// parts (kernel checks, MAC derivation, command line, dial retries, state names) so they are
// tested on every OS. Binaries that call New must be signed with entitlements.plist.
package vz
