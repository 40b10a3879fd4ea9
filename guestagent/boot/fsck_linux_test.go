package boot

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ext4Image makes a real ext4 image with mkfs.ext4 and applies debugfs commands to it.
func ext4Image(t *testing.T, debugfs ...string) string {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "debugfs", "e2fsck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (e2fsprogs)", tool)
		}
	}
	p := filepath.Join(t.TempDir(), "data.raw")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", DataLabel, p, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	for _, c := range debugfs {
		if out, err := exec.Command("debugfs", "-w", "-R", c, p).CombinedOutput(); err != nil {
			t.Fatalf("debugfs %q: %v: %s", c, err, out)
		}
	}
	return p
}

func plainRunner(ctx context.Context, cmd *exec.Cmd) ([]byte, int, error) {
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode(), nil
	}
	return out, 0, err
}

func TestCheckData(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		name    string
		debugfs []string
		reason  string // in the summary; "" means no check ran
		result  string
		wantErr error
	}{
		{name: "clean", reason: ""},
		{name: "unclean stop", debugfs: []string{"feature needs_recovery"}, reason: "journal needs recovery", result: ""},
		{name: "not marked clean", debugfs: []string{"ssv state 0"}, reason: "not marked clean", result: ""},
		{name: "errors recorded, fixable", debugfs: []string{"ssv state 3", "set_inode_field <11> links_count 7"}, reason: "the kernel recorded errors", result: "repaired"},
		{name: "errors left uncorrected", debugfs: []string{"ssv state 3", "clri <2>"}, wantErr: ErrFsckUncorrected},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := ext4Image(t, tt.debugfs...)
			got, err := CheckData(context.Background(), plainRunner, log, img)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "e2fsck -p") || !strings.Contains(err.Error(), "left as it is") {
					t.Fatalf("CheckData: %v, want %v naming the command", err, tt.wantErr)
				}
				// The disk is still the same ext4 filesystem: nothing formatted it.
				if k, _ := DetectDisk(img); k != DiskExt4 {
					t.Errorf("disk is %v after a failed check", k)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.reason == "" {
				if got != "" {
					t.Fatalf("a clean filesystem was checked: %q", got)
				}
				return
			}
			if !strings.Contains(got, tt.reason) || !strings.Contains(got, tt.result) {
				t.Errorf("summary %q, want it to contain %q and %q", got, tt.reason, tt.result)
			}
			// The check left it clean: the next boot mounts without checking.
			st, err := ReadFSState(img)
			if err != nil {
				t.Fatal(err)
			}
			if r := st.CheckReason(); r != "" {
				t.Errorf("after the check the filesystem still needs one: %s (%+v)", r, st)
			}
		})
	}
}

func TestJudgeFsck(t *testing.T) {
	for _, tt := range []struct {
		code    int
		ok      bool
		summary string
	}{
		{0, true, "checked clean"},
		{1, true, "repaired"},
		{2, true, "repaired"},
		{3, true, "repaired"},
		{4, false, ""},
		{8, false, ""},
		{12, false, ""},
		{32, false, ""},
	} {
		s, err := JudgeFsck("/dev/vdb", tt.code, []byte("line1\nmachine-data: 11/16384 files\n"))
		if (err == nil) != tt.ok || !strings.Contains(s, tt.summary) {
			t.Errorf("JudgeFsck(%d) = %q, %v", tt.code, s, err)
		}
		if err != nil && !strings.Contains(err.Error(), "11/16384 files") {
			t.Errorf("JudgeFsck(%d) error does not carry e2fsck's output: %v", tt.code, err)
		}
	}
}

func TestReadFSStateRefusesNonExt(t *testing.T) {
	if _, err := ReadFSState(image(t, 1<<20, nil)); !errors.Is(err, ErrUnknownDisk) {
		t.Errorf("blank disk: %v", err)
	}
}
