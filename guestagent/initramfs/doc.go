// Package initramfs is stage 1 of the guest boot: the agent running as /init in the
// initramfs. It mounts the kernel filesystems, loads the modules the image lists, finds the
// read-only root (squashfs or erofs, by magic), stacks a tmpfs overlay on it, switches root
// and execs the agent again from the root as stage 2, passing its phase times along.
//
// RootFSType is portable (and tested anywhere); the rest is Linux-only.
package initramfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// PhasesEnv is the environment variable that carries stage 1's phases (JSON []api.Phase)
// into stage 2.
const PhasesEnv = "MACHINE_STAGE1_PHASES"

// RootFSType returns "squashfs" or "erofs" by the image's magic number.
func RootFSType(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("root image %s: %w", path, err)
	}
	defer f.Close()
	var b [1028]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return "", fmt.Errorf("root image %s: read superblock: %w", path, err)
	}
	switch {
	case string(b[0:4]) == "hsqs":
		return "squashfs", nil
	case binary.LittleEndian.Uint32(b[1024:1028]) == 0xE0F5E1E2:
		return "erofs", nil
	}
	return "", fmt.Errorf("root image %s: neither squashfs nor erofs (magic % x)", path, b[0:4])
}
