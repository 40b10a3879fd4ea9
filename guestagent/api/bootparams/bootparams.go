// Package bootparams is the boot contract between the host and the guest: everything a guest
// is told when it boots (transport channel, network mode, hostname, shared folders, Rosetta,
// channel token, the host's clock, root and data devices) as one struct, with the one encoder
// every driver uses to make its kernel command line and the one decoder the guest reads
// /proc/cmdline with. The contract keys are unexported: no driver can write one by hand.
package bootparams

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Params is what a guest is told at boot.
type Params struct {
	// Kernel holds the words meant for the kernel itself ("panic=-1", "quiet"), in order.
	// They are passed through untouched; none may be a contract key, console= or rootfstype=.
	Kernel []string
	// Console is the kernel console device ("ttyS0", "ttyAMA0", "hvc0"), chosen by the
	// driver; empty leaves the kernel's default.
	Console string
	// RootFSType is the filesystem of the root image (the kernel's rootfstype=, which the
	// initramfs reads when the disk's magic does not tell).
	RootFSType string

	// Root is the block device of the read-only root image; Data the persistent data disk
	// (empty: none, engine state lives in memory).
	Root string
	Data string

	// Channel is ChannelSerial or ChannelVsock: the transport the guest agent serves on.
	Channel string
	// Net is NetUser, NetDHCP or NetNone.
	Net string
	// ForwardNIC says the driver attached the forwarding NIC (see ForwardNICMAC): the guest
	// configures it and the host agent reaches published ports through it.
	ForwardNIC bool
	// Hostname is the guest's hostname (the machine's name).
	Hostname string

	// Shares are host folders to mount, in this order (parents before children).
	Shares []Share
	// Rosetta, when set, is an x86_64 translator shared by the host under its own tag; the
	// guest mounts it and registers <MountPoint>/rosetta with binfmt_misc.
	Rosetta *Rosetta

	// NoHostAccess turns host.docker.internal off: the guest gives containers no path to
	// the host's loopback (the machine was created with --host-access=false). The zero
	// value, on, is what a guest assumes when the key is missing.
	NoHostAccess bool

	// Token, when set, is a secret the host writes as the first line of every serial-channel
	// session ("<token>\n") after the preamble. It guards channels that other local users
	// could reach (QEMU's loopback TCP chardev on Windows). It never travels on the command
	// line, which every container can read in /proc/cmdline: Encode writes only where the
	// guest finds it (TokenFrom), the driver hands the value to QEMU's firmware configuration
	// device under TokenFwCfgName, and the guest reads it with ReadToken. Decode sets Token
	// only from the literal form an older host wrote.
	Token string
	// TokenFrom is where the guest reads the token: "" (nowhere: no token, or a literal
	// Token) or TokenFwCfg. Encode sets it in the command line whenever Token is set.
	TokenFrom string
	// Time is the host's clock when the driver made these parameters, so the guest's clock is
	// right before the host's first time sync (a VM without a battery-backed clock starts at
	// the epoch). Zero: not given.
	Time time.Time

	// Unknown holds contract-looking words ("machine.*") this version does not know, as the
	// decoder found them; the guest logs them. Encode refuses them.
	Unknown []string
}

// Share is a host folder exposed under Tag (a 9p mount tag or a virtiofs tag) and mounted at
// GuestPath.
type Share struct {
	Tag       string
	GuestPath string
	ReadOnly  bool
}

// Rosetta is where the guest finds the Rosetta share.
type Rosetta struct {
	Tag        string
	MountPoint string
}

// Channel values.
const (
	ChannelSerial = "serial"
	ChannelVsock  = "vsock"
)

// Network modes.
const (
	// NetUser is QEMU user networking: static 10.0.2.15/24, gateway .2, DNS .3.
	NetUser = "user"
	// NetDHCP asks the hypervisor's NAT for a lease (Apple's framework).
	NetDHCP = "dhcp"
	// NetNone brings up loopback only.
	NetNone = "none"
)

// The forwarding NIC is a second virtio-net device, a private point-to-point Ethernet link
// whose other end is a user-mode TCP/IP stack in the host agent (hostagent/netstack), not
// the hypervisor's NAT. The host agent dials the ports the engine publishes on the guest's
// wildcard address through it: with no NAT in between, the link carries frames as large as
// ForwardNICMTU, so a bulk transfer costs one hypervisor round trip per 64 KiB instead of
// one per 1.5 KiB. The guest finds the device by its MAC address; nothing else routes over
// it (no gateway, no DNS), and the host end accepts no connections.
const (
	ForwardNICMAC     = "52:54:00:6d:66:02"
	ForwardNICHostMAC = "52:54:00:6d:66:01"
	ForwardNICHostIP  = "192.168.65.9"
	ForwardNICGuestIP = "192.168.65.10"
	ForwardNICPrefix  = 30
	// ForwardNICMTU fits an IPv4 packet of 65520 bytes and its Ethernet header in a
	// datagram of the link's socket on every host.
	ForwardNICMTU = 65520
)

// Defaults the decoder applies when a key is missing.
const (
	DefaultChannel  = ChannelSerial
	DefaultNet      = NetUser
	DefaultHostname = "machine"
)

// RosettaTag and RosettaMountPoint are where every driver shares Rosetta and where the guest
// mounts it.
const (
	RosettaTag        = "machine-rosetta"
	RosettaMountPoint = "/mnt/machine-rosetta"
)

// TokenFwCfg is the one place a token is passed: QEMU's firmware configuration device
// (-fw_cfg name=TokenFwCfgName,file=...), which the guest kernel's qemu_fw_cfg module shows
// in sysfs at TokenFwCfgPath, readable by root only, under /sys/firmware, which Docker masks
// in every container that is not privileged.
const (
	TokenFwCfg     = "fw_cfg"
	TokenFwCfgName = "opt/run.machine/token"
	TokenFwCfgPath = "/sys/firmware/qemu_fw_cfg/by_name/" + TokenFwCfgName + "/raw"
)

// tokenFwCfgWord is the value of machine.token that says "read it from fw_cfg"; it cannot be
// a literal token (tokens have no colon or slash).
const tokenFwCfgWord = TokenFwCfg + ":" + TokenFwCfgName

// MaxLen is the longest command line the kernel keeps (COMMAND_LINE_SIZE on amd64 and arm64,
// including the terminating NUL); the rest would be cut off silently.
const MaxLen = 2048 - 1

// ErrTooLong is returned by Encode when the command line would not fit in MaxLen.
var ErrTooLong = errors.New("kernel command line too long")

// The contract's keys. Only this package spells them.
const (
	keyConsole    = "console"
	keyRootFSType = "rootfstype"
	keyRoot       = "machine.root"
	keyData       = "machine.data"
	keyChannel    = "machine.channel"
	keyNet        = "machine.net"
	keyHostname   = "machine.hostname"
	keyShares     = "machine.shares"
	keyRosetta    = "machine.rosetta"
	keyToken      = "machine.token"
	keyTime       = "machine.time"
	keyHostAccess = "machine.hostaccess"
	keyForwardNIC = "machine.fwdnic"

	contractPrefix = "machine."
)

// shareReadOnly is the flag that follows a share's path: tag=/path:ro.
const shareReadOnly = "ro"

var (
	// A virtiofs tag is at most 36 bytes; 9p mount tags have the same alphabet here.
	tagRE      = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,36}$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	tokenRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	consoleRE  = regexp.MustCompile(`^[A-Za-z0-9_.,-]{1,64}$`)
	fstypeRE   = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)
)

// Validate reports the first thing that makes p unencodable, naming the field.
func (p Params) Validate() error {
	switch p.Channel {
	case ChannelSerial, ChannelVsock:
	default:
		return fmt.Errorf("channel %q: want %s or %s", p.Channel, ChannelSerial, ChannelVsock)
	}
	switch p.Net {
	case NetUser, NetDHCP, NetNone:
	default:
		return fmt.Errorf("network mode %q: want %s, %s or %s", p.Net, NetUser, NetDHCP, NetNone)
	}
	if !hostnameRE.MatchString(p.Hostname) {
		return fmt.Errorf("hostname %q: want 1-63 letters, digits and dashes, not starting or ending with a dash", p.Hostname)
	}
	if p.Console != "" && !consoleRE.MatchString(p.Console) {
		return fmt.Errorf("console %q: want a device name like ttyS0 or hvc0", p.Console)
	}
	if p.RootFSType != "" && !fstypeRE.MatchString(p.RootFSType) {
		return fmt.Errorf("root filesystem type %q: want a name like squashfs", p.RootFSType)
	}
	for what, dev := range map[string]string{"root device": p.Root, "data device": p.Data} {
		if dev != "" && !isAbs(dev) {
			return fmt.Errorf("%s %q: want an absolute path like /dev/vda", what, dev)
		}
	}
	tags := map[string]bool{}
	paths := map[string]bool{}
	for _, s := range p.Shares {
		if !tagRE.MatchString(s.Tag) {
			return fmt.Errorf("share tag %q: want 1-36 letters, digits, dots, dashes or underscores", s.Tag)
		}
		if tags[s.Tag] {
			return fmt.Errorf("share tag %q: used twice", s.Tag)
		}
		if !isAbs(s.GuestPath) {
			return fmt.Errorf("share %q: guest path %q is not absolute", s.Tag, s.GuestPath)
		}
		if paths[s.GuestPath] {
			return fmt.Errorf("share %q: guest path %q is used by another share", s.Tag, s.GuestPath)
		}
		tags[s.Tag], paths[s.GuestPath] = true, true
	}
	if r := p.Rosetta; r != nil {
		if !tagRE.MatchString(r.Tag) {
			return fmt.Errorf("rosetta tag %q: want 1-36 letters, digits, dots, dashes or underscores", r.Tag)
		}
		if tags[r.Tag] {
			return fmt.Errorf("rosetta tag %q: also a share's tag", r.Tag)
		}
		if !isAbs(r.MountPoint) {
			return fmt.Errorf("rosetta mount point %q is not absolute", r.MountPoint)
		}
		if paths[r.MountPoint] {
			return fmt.Errorf("rosetta mount point %q is also a share's guest path", r.MountPoint)
		}
	}
	if !p.Time.IsZero() {
		if y := p.Time.UTC().Year(); y < 1970 || y > 9999 {
			return fmt.Errorf("time %s: want a year from 1970 to 9999", p.Time.UTC().Format(time.RFC3339))
		}
	}
	if p.Token != "" && !tokenRE.MatchString(p.Token) {
		return errors.New("token: want 1-128 letters, digits, dashes or underscores")
	}
	if p.TokenFrom != "" && p.TokenFrom != TokenFwCfg {
		return fmt.Errorf("token source %q: want %s", p.TokenFrom, TokenFwCfg)
	}
	for _, w := range p.Kernel {
		if err := checkKernelWord(w); err != nil {
			return err
		}
	}
	if len(p.Unknown) > 0 {
		return fmt.Errorf("unknown contract words %q cannot be encoded", p.Unknown)
	}
	return nil
}

func checkKernelWord(w string) error {
	if w == "" {
		return errors.New("empty kernel word")
	}
	if strings.ContainsAny(w, "\"") || strings.IndexFunc(w, isControl) >= 0 {
		return fmt.Errorf("kernel word %q: the command line cannot carry double quotes or control characters", w)
	}
	k, _, _ := strings.Cut(w, "=")
	if strings.HasPrefix(k, contractPrefix) || k == keyConsole || k == keyRootFSType {
		return fmt.Errorf("kernel word %q: %s is a field of the boot contract, not a kernel word", w, k)
	}
	return nil
}

// ReadToken returns the token p says the guest must read (empty when there is none), with
// readFile reading a guest path (os.ReadFile in the guest, a fake sysfs tree in tests).
func ReadToken(p Params, readFile func(path string) ([]byte, error)) (string, error) {
	switch p.TokenFrom {
	case "":
		return p.Token, nil
	case TokenFwCfg:
	default:
		return "", fmt.Errorf("token source %q: want %s", p.TokenFrom, TokenFwCfg)
	}
	b, err := readFile(TokenFwCfgPath)
	if err != nil {
		return "", fmt.Errorf("channel token from QEMU's firmware configuration (is the qemu_fw_cfg module loaded?): %w", err)
	}
	tok := string(b)
	if !tokenRE.MatchString(tok) {
		return "", fmt.Errorf("channel token in %s: %d bytes that are not 1-128 letters, digits, dashes or underscores", TokenFwCfgPath, len(b))
	}
	return tok, nil
}

// isAbs accepts an absolute guest path; a NUL cannot be in a path.
func isAbs(p string) bool { return strings.HasPrefix(p, "/") && !strings.Contains(p, "\x00") }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
