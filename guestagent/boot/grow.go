package boot

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// Superblock fields for the filesystem's size.
const (
	sbBlocksLo    = 4     // le32 s_blocks_count_lo
	sbLogBlock    = 24    // le32 s_log_block_size: block size is 1024 << it
	sbBlocksHi    = 0x150 // le32 s_blocks_count_hi (64bit feature)
	incompat64bit = 0x80
)

// growSlack is how much larger than its filesystem a disk must be before the filesystem is
// grown: resize2fs rounds to whole block groups, so a few MiB are never worth a resize.
const growSlack = 64 << 20

// ReadFSSize returns the size in bytes of the ext filesystem at path (from its superblock).
func ReadFSSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("data disk %s: %w", path, err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := io.ReadFull(io.NewSectionReader(f, sbOffset, 1024), sb); err != nil {
		return 0, fmt.Errorf("data disk %s: read superblock: %w", path, err)
	}
	return fsSize(sb)
}

func fsSize(sb []byte) (int64, error) {
	if binary.LittleEndian.Uint16(sb[sbMagic:]) != 0xEF53 {
		return 0, ErrUnknownDisk
	}
	blocks := uint64(binary.LittleEndian.Uint32(sb[sbBlocksLo:]))
	if binary.LittleEndian.Uint32(sb[sbIncompat:])&incompat64bit != 0 {
		blocks |= uint64(binary.LittleEndian.Uint32(sb[sbBlocksHi:])) << 32
	}
	logBlock := binary.LittleEndian.Uint32(sb[sbLogBlock:])
	if logBlock > 6 {
		return 0, fmt.Errorf("superblock: block size 1024<<%d: %w", logBlock, ErrUnknownDisk)
	}
	return int64(blocks) << (10 + logBlock), nil
}

// deviceSize is the size of a block device or file.
func deviceSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// NeedsGrow reports whether a filesystem of fsBytes on a device of devBytes should grow.
func NeedsGrow(devBytes, fsBytes int64) bool { return devBytes-fsBytes >= growSlack }

// GrowData grows the mounted ext4 filesystem on dev to fill it (resize2fs, online), when the
// disk was made larger on the host (`machine set --disk`). Growing only adds block groups:
// nothing stored is moved or rewritten. It returns what it did ("" when nothing was needed).
func GrowData(ctx context.Context, run Runner, log *slog.Logger, dev string) (string, error) {
	fsBytes, err := ReadFSSize(dev)
	if err != nil {
		return "", err
	}
	devBytes, err := deviceSize(dev)
	if err != nil {
		return "", fmt.Errorf("data disk %s: size: %w", dev, err)
	}
	if !NeedsGrow(devBytes, fsBytes) {
		return "", nil
	}
	start := time.Now()
	out, code, err := run(ctx, exec.Command("resize2fs", dev))
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d: %s", code, lastLines(string(out), 5))
	}
	if err != nil {
		return "", fmt.Errorf("data disk %s: `resize2fs %s` to grow the filesystem from %s to %s failed: %w; the data is untouched and the filesystem keeps its old size", dev, dev, gib(fsBytes), gib(devBytes), err)
	}
	summary := fmt.Sprintf("filesystem grown from %s to %s", gib(fsBytes), gib(devBytes))
	log.Info("data disk: grown", "device", dev, "took", time.Since(start).Round(time.Millisecond), "result", summary)
	return summary, nil
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
