package boot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// FSState is what an ext2/3/4 superblock says about how the filesystem was left.
type FSState struct {
	Valid         bool // s_state has EXT2_VALID_FS: the last unmount was clean (or it is journaled and fine)
	Errors        bool // s_state has EXT2_ERROR_FS: the kernel recorded an error
	Orphans       bool // s_state has EXT3_ORPHAN_FS: orphan recovery was interrupted
	NeedsRecovery bool // the journal holds transactions not yet written back: an unclean stop
}

// Superblock fields (the superblock starts 1024 bytes into the device).
const (
	sbOffset        = 1024
	sbMagic         = 56 // le16, 0xEF53
	sbState         = 58 // le16
	sbIncompat      = 96 // le32
	stateValid      = 0x0001
	stateError      = 0x0002
	stateOrphan     = 0x0004
	incompatRecover = 0x0004
)

// ReadFSState reads the superblock of the ext filesystem at path.
func ReadFSState(path string) (FSState, error) {
	f, err := os.Open(path)
	if err != nil {
		return FSState{}, fmt.Errorf("data disk %s: %w", path, err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := io.ReadFull(io.NewSectionReader(f, sbOffset, 1024), sb); err != nil {
		return FSState{}, fmt.Errorf("data disk %s: read superblock: %w", path, err)
	}
	if binary.LittleEndian.Uint16(sb[sbMagic:]) != 0xEF53 {
		return FSState{}, fmt.Errorf("data disk %s: %w", path, ErrUnknownDisk)
	}
	state := binary.LittleEndian.Uint16(sb[sbState:])
	return FSState{
		Valid:         state&stateValid != 0,
		Errors:        state&stateError != 0,
		Orphans:       state&stateOrphan != 0,
		NeedsRecovery: binary.LittleEndian.Uint32(sb[sbIncompat:])&incompatRecover != 0,
	}, nil
}

// CheckReason says why the filesystem must be checked before it is mounted, or "" when it
// was left clean.
func (s FSState) CheckReason() string {
	var why []string
	if s.NeedsRecovery {
		why = append(why, "not cleanly unmounted (journal needs recovery)")
	}
	if !s.Valid {
		why = append(why, "not marked clean")
	}
	if s.Errors {
		why = append(why, "the kernel recorded errors")
	}
	if s.Orphans {
		why = append(why, "orphan recovery was interrupted")
	}
	return strings.Join(why, ", ")
}

// ErrFsckUncorrected is wrapped by the error of a check that left errors it could not fix.
var ErrFsckUncorrected = errors.New("the filesystem check left errors it could not fix safely")

// e2fsck exit-code bits (e2fsck(8)).
const (
	fsckCorrected = 1
	fsckReboot    = 2
	fsckLeft      = 4
	fsckFailed    = 8
	fsckUsage     = 16
	fsckCancelled = 32
	fsckLibrary   = 128
)

// JudgeFsck turns e2fsck -p's exit code and output into a summary for the boot phase
// (what it did) or an error: anything beyond "corrected" means the disk must not be mounted.
func JudgeFsck(dev string, code int, output []byte) (summary string, err error) {
	tail := lastLines(string(output), 6)
	if code&(fsckLeft|fsckFailed|fsckUsage|fsckCancelled|fsckLibrary) != 0 {
		why := ErrFsckUncorrected
		if code&fsckLeft == 0 {
			why = fmt.Errorf("e2fsck failed to run (exit %d)", code)
		}
		return "", fmt.Errorf("data disk %s: `e2fsck -p %s` exited %d: %w; the disk was left as it is: stop the machine and repair it with `e2fsck -f` on the host: %s",
			dev, dev, code, why, tail)
	}
	switch {
	case code&(fsckCorrected|fsckReboot) != 0:
		return "repaired: " + tail, nil
	default:
		return "checked clean: " + tail, nil
	}
}

// lastLines is the last n non-empty lines of s joined with "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, "; ")
}

// Runner runs cmd and returns its combined output and exit code; err is for a command that
// could not run or was stopped by ctx.
type Runner func(ctx context.Context, cmd *exec.Cmd) (out []byte, code int, err error)

// CheckData runs a preen check (e2fsck -p) on dev when its superblock says the filesystem
// was not left clean, as after a power loss or a killed VM, and returns what the check did
// ("" when none was needed). It never formats. A check that leaves errors returns an error
// wrapping ErrFsckUncorrected: the disk must then not be mounted.
func CheckData(ctx context.Context, run Runner, log *slog.Logger, dev string) (string, error) {
	st, err := ReadFSState(dev)
	if err != nil {
		return "", err
	}
	why := st.CheckReason()
	if why == "" {
		return "", nil
	}
	start := time.Now()
	out, code, err := run(ctx, exec.Command("e2fsck", "-p", dev))
	if err != nil {
		return "", fmt.Errorf("data disk %s: check (%s): %w", dev, why, err)
	}
	summary, err := JudgeFsck(dev, code, out)
	if err != nil {
		return "", err
	}
	summary = why + "; " + summary
	log.Info("data disk: checked", "device", dev, "exit", code, "took", time.Since(start).Round(time.Millisecond), "result", summary)
	return summary, nil
}
