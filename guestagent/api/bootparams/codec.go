package bootparams

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Encode returns the kernel command line for p. Values that hold a space are quoted the way
// the kernel reads them (key="a b"); characters the command line cannot carry in a path
// (%, comma, colon, double quote, control characters) are percent-escaped.
func (p Params) Encode() (string, error) {
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("boot parameters: %w", err)
	}
	var words []string
	for _, w := range p.Kernel {
		words = append(words, quoteWord(w))
	}
	add := func(key, value string) { words = append(words, quoteWord(key+"="+value)) }
	if p.Console != "" {
		add(keyConsole, p.Console)
	}
	if p.RootFSType != "" {
		add(keyRootFSType, p.RootFSType)
	}
	if p.Root != "" {
		add(keyRoot, escapePath(p.Root))
	}
	if p.Data != "" {
		add(keyData, escapePath(p.Data))
	}
	add(keyChannel, p.Channel)
	add(keyNet, p.Net)
	if p.ForwardNIC {
		add(keyForwardNIC, "on")
	}
	add(keyHostname, p.Hostname)
	if len(p.Shares) > 0 {
		items := make([]string, len(p.Shares))
		for i, s := range p.Shares {
			items[i] = s.Tag + "=" + escapePath(s.GuestPath)
			if s.ReadOnly {
				items[i] += ":" + shareReadOnly
			}
		}
		add(keyShares, strings.Join(items, ","))
	}
	if r := p.Rosetta; r != nil {
		add(keyRosetta, r.Tag+"="+escapePath(r.MountPoint))
	}
	if p.NoHostAccess {
		add(keyHostAccess, "off")
	}
	if !p.Time.IsZero() {
		add(keyTime, p.Time.UTC().Format(time.RFC3339Nano))
	}
	if p.Token != "" || p.TokenFrom != "" {
		add(keyToken, tokenFwCfgWord)
	}
	line := strings.Join(words, " ")
	if len(line) > MaxLen {
		return "", fmt.Errorf("boot parameters: %w: %d bytes, the kernel keeps %d (share fewer folders, or folders with shorter paths)", ErrTooLong, len(line), MaxLen)
	}
	return line, nil
}

// Decode reads a kernel command line (/proc/cmdline). As in the kernel, a later word wins
// over an earlier one with the same key, and double quotes group words. Missing keys get
// the defaults (DefaultChannel, DefaultNet, DefaultHostname). On error it also returns what
// it could read, so a guest can still report the failure over its channel.
func Decode(line string) (Params, error) {
	p := Params{}
	words, err := splitWords(line)
	if err != nil {
		return p, fmt.Errorf("kernel command line: %w", err)
	}
	var errs []error
	fail := func(key string, err error) { errs = append(errs, fmt.Errorf("%s: %w", key, err)) }
	for _, w := range words {
		key, value, _ := strings.Cut(w, "=")
		switch key {
		case keyConsole:
			p.Console = value
		case keyRootFSType:
			p.RootFSType = value
		case keyRoot:
			if p.Root, err = unescapePath(value); err != nil {
				fail(key, err)
			}
		case keyData:
			if p.Data, err = unescapePath(value); err != nil {
				fail(key, err)
			}
		case keyChannel:
			p.Channel = value
		case keyNet:
			p.Net = value
		case keyHostname:
			p.Hostname = value
		case keyForwardNIC:
			switch value {
			case "on":
				p.ForwardNIC = true
			case "off":
				p.ForwardNIC = false
			default:
				fail(key, fmt.Errorf("%q: want on or off", value))
			}
		case keyShares:
			if p.Shares, err = decodeShares(value); err != nil {
				fail(key, err)
			}
		case keyRosetta:
			if p.Rosetta, err = decodeRosetta(value); err != nil {
				fail(key, err)
			}
		case keyHostAccess:
			switch value {
			case "on":
				p.NoHostAccess = false
			case "off":
				p.NoHostAccess = true
			default:
				fail(key, fmt.Errorf("%q: want on or off", value))
			}
		case keyToken:
			if value == tokenFwCfgWord {
				p.Token, p.TokenFrom = "", TokenFwCfg
			} else {
				p.Token, p.TokenFrom = value, ""
			}
		case keyTime:
			if p.Time, err = decodeTime(value); err != nil {
				fail(key, err)
			}
		default:
			if strings.HasPrefix(key, contractPrefix) {
				p.Unknown = append(p.Unknown, w)
			} else {
				p.Kernel = append(p.Kernel, w)
			}
		}
	}
	if p.Channel == "" {
		p.Channel = DefaultChannel
	}
	if p.Net == "" {
		p.Net = DefaultNet
	}
	if p.Hostname == "" {
		p.Hostname = DefaultHostname
	}
	if len(errs) == 0 {
		known := p
		known.Unknown = nil
		if err := known.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return p, fmt.Errorf("kernel command line: %w", err)
	}
	return p, nil
}

func decodeShares(v string) ([]Share, error) {
	if v == "" {
		return nil, nil
	}
	var shares []Share
	for _, item := range strings.Split(v, ",") {
		tag, rest, ok := strings.Cut(item, "=")
		if !ok || tag == "" {
			return nil, fmt.Errorf("%q is not tag=/guest/path", item)
		}
		parts := strings.Split(rest, ":")
		path, err := unescapePath(parts[0])
		if err != nil {
			return nil, fmt.Errorf("share %q: %w", tag, err)
		}
		s := Share{Tag: tag, GuestPath: path}
		for _, flag := range parts[1:] {
			if flag != shareReadOnly {
				return nil, fmt.Errorf("share %q: unknown flag %q (want %s)", tag, flag, shareReadOnly)
			}
			s.ReadOnly = true
		}
		shares = append(shares, s)
	}
	return shares, nil
}

func decodeRosetta(v string) (*Rosetta, error) {
	if v == "" {
		return nil, nil
	}
	tag, rest, ok := strings.Cut(v, "=")
	if !ok {
		return nil, fmt.Errorf("%q is not tag=/mount/point", v)
	}
	mount, err := unescapePath(rest)
	if err != nil {
		return nil, err
	}
	return &Rosetta{Tag: tag, MountPoint: mount}, nil
}

func decodeTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", v)
	}
	return t.UTC(), nil
}

// quoteWord quotes the value of a word that holds a space (key="a b"), or the whole word
// when it has no key or its key holds the space.
func quoteWord(w string) string {
	if !strings.Contains(w, " ") {
		return w
	}
	if k, v, ok := strings.Cut(w, "="); ok && !strings.Contains(k, " ") {
		return k + `="` + v + `"`
	}
	return `"` + w + `"`
}

// isBlank is the kernel's isspace() on the command line.
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// splitWords splits on blanks outside double quotes and drops the quotes, byte by byte (the
// command line is bytes, not necessarily UTF-8). Empty words are dropped.
func splitWords(line string) ([]string, error) {
	var words []string
	var cur []byte
	inQuote := false
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			inQuote = !inQuote
		case isBlank(c) && !inQuote:
			flush()
		case c < 0x20 || c == 0x7f:
			return nil, fmt.Errorf("control character %#02x at byte %d", c, i)
		default:
			cur = append(cur, c)
		}
	}
	flush()
	return words, nil
}

// escapePath percent-escapes the bytes a path cannot carry on the command line or in a
// list item.
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if mustEscape(c) {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func mustEscape(c byte) bool {
	return c == '%' || c == ',' || c == ':' || c == '"' || c < 0x20 || c == 0x7f
}

func unescapePath(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", fmt.Errorf("%q: truncated escape at byte %d", v, i)
		}
		hi, ok1 := unhex(v[i+1])
		lo, ok2 := unhex(v[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%q: bad escape %q", v, v[i:i+3])
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
