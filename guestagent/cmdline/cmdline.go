// Package cmdline parses the kernel command line into the machine.* settings the guest agent
// boots from (see the Cmdline* keys in guestagent/api). Both boot stages use it.
package cmdline

import (
	"fmt"
	"os"
	"strings"

	"github.com/machine-run/machine/guestagent/api"
)

// Params are the guest's boot settings. Missing keys keep their zero value; Parse applies
// the defaults.
type Params struct {
	Root     string // block device of the read-only root image
	Data     string // persistent data disk; empty means none
	Channel  string // api.ChannelSerial or api.ChannelVsock
	Net      string // "user", "dhcp" or "none"
	Hostname string
	// Shares maps a 9p/virtiofs tag to its guest path.
	Shares map[string]string
	// Raw holds every key=value word, for keys this package does not name.
	Raw map[string]string
}

// Defaults applied when the command line leaves a key out.
const (
	DefaultChannel  = api.ChannelSerial
	DefaultNet      = "user"
	DefaultHostname = "machine"
)

// Parse reads a kernel command line. Later words override earlier ones, as in the kernel.
// Quoted values ("a b") are unquoted.
func Parse(line string) (Params, error) {
	p := Params{Raw: map[string]string{}, Shares: map[string]string{}}
	for _, w := range splitWords(line) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			p.Raw[w] = ""
			continue
		}
		p.Raw[k] = v
	}
	p.Root = p.Raw[api.CmdlineRoot]
	p.Data = p.Raw[api.CmdlineData]
	p.Channel = orDefault(p.Raw[api.CmdlineChannel], DefaultChannel)
	p.Net = orDefault(p.Raw[api.CmdlineNet], DefaultNet)
	p.Hostname = orDefault(p.Raw[api.CmdlineHostname], DefaultHostname)
	switch p.Channel {
	case api.ChannelSerial, api.ChannelVsock:
	default:
		return p, fmt.Errorf("kernel command line: %s=%q: want %q or %q", api.CmdlineChannel, p.Channel, api.ChannelSerial, api.ChannelVsock)
	}
	switch p.Net {
	case "user", "dhcp", "none":
	default:
		return p, fmt.Errorf("kernel command line: %s=%q: want user, dhcp or none", api.CmdlineNet, p.Net)
	}
	if s := p.Raw[api.CmdlineShares]; s != "" {
		for _, pair := range strings.Split(s, ",") {
			tag, path, ok := strings.Cut(pair, "=")
			if !ok || tag == "" || !strings.HasPrefix(path, "/") {
				return p, fmt.Errorf("kernel command line: %s: %q is not tag=/guest/path", api.CmdlineShares, pair)
			}
			p.Shares[tag] = path
		}
	}
	return p, nil
}

// ReadProc parses /proc/cmdline.
func ReadProc() (Params, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return Params{}, fmt.Errorf("kernel command line: %w", err)
	}
	return Parse(string(b))
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// splitWords splits on blanks, keeping double-quoted runs together (the kernel's rule).
func splitWords(line string) []string {
	var words []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		words = append(words, cur.String())
	}
	return words
}
