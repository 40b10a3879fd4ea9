package boot

import (
	"encoding/binary"
	"errors"
	"testing"
)

func superblock(blocksLo, blocksHi, logBlock uint32, bit64 bool) []byte {
	sb := make([]byte, 1024)
	binary.LittleEndian.PutUint16(sb[sbMagic:], 0xEF53)
	binary.LittleEndian.PutUint32(sb[sbBlocksLo:], blocksLo)
	binary.LittleEndian.PutUint32(sb[sbBlocksHi:], blocksHi)
	binary.LittleEndian.PutUint32(sb[sbLogBlock:], logBlock)
	if bit64 {
		binary.LittleEndian.PutUint32(sb[sbIncompat:], incompat64bit)
	}
	return sb
}

func TestFSSize(t *testing.T) {
	tests := []struct {
		sb   []byte
		want int64
	}{
		{superblock(1<<20, 0, 2, true), 4 << 30},    // 4 GiB of 4 KiB blocks
		{superblock(0, 1, 2, true), 16 << 40},       // 2^32 blocks: the high word counts
		{superblock(1000, 7, 0, false), 1000 << 10}, // no 64bit feature: the high word is ignored
		{superblock(262144, 0, 2, false), 262144 * 4096},
	}
	for _, tt := range tests {
		if got, err := fsSize(tt.sb); err != nil || got != tt.want {
			t.Errorf("fsSize = %d, %v; want %d", got, err, tt.want)
		}
	}
	if _, err := fsSize(make([]byte, 1024)); !errors.Is(err, ErrUnknownDisk) {
		t.Errorf("no magic: %v, want ErrUnknownDisk", err)
	}
}

func TestNeedsGrow(t *testing.T) {
	for _, tt := range []struct {
		dev, fs int64
		want    bool
	}{
		{8 << 30, 4 << 30, true},
		{4 << 30, 4 << 30, false},
		{4<<30 + 1<<20, 4 << 30, false}, // resize2fs's rounding: not worth it
		{4 << 30, 8 << 30, false},       // never shrink
	} {
		if got := NeedsGrow(tt.dev, tt.fs); got != tt.want {
			t.Errorf("NeedsGrow(%d, %d) = %v", tt.dev, tt.fs, got)
		}
	}
}
