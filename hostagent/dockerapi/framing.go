package dockerapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxHead bounds a request or response head (start line and headers), as net/http's
// DefaultMaxHeaderBytes does.
const maxHead = 1 << 20

// errHeadTooLarge is a head over maxHead.
var errHeadTooLarge = errors.New("http head too large")

// bodyKind is how a message's body is delimited.
type bodyKind int

const (
	bodyNone    bodyKind = iota
	bodyLength           // Content-Length bytes
	bodyChunked          // chunked transfer coding
	bodyToClose          // until the sender closes (responses only)
)

// head is a parsed start line and header block, with the exact bytes read, so a message that
// is not changed is passed on byte for byte.
type head struct {
	raw []byte
	// Request: method and target; response: status code.
	method, target, proto string
	status                int
	header                map[string][]string // canonical names ("Content-Length")
}

func (h *head) get(name string) string {
	if v := h.header[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// hasToken reports whether a comma-separated header (Connection, Upgrade) lists tok.
func (h *head) hasToken(name, tok string) bool {
	for _, v := range h.header[name] {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}

// readHead reads one head: lines up to an empty line. It returns io.EOF when the peer
// closed before sending anything.
func readHead(r *bufio.Reader) (*head, error) {
	var raw []byte
	var lines []string
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, errHeadTooLarge
		}
		if err != nil {
			if err == io.EOF && len(raw) == 0 && len(line) == 0 {
				return nil, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(raw) == 0 && (string(line) == "\r\n" || string(line) == "\n") {
			continue // RFC 9112 2.2: ignore empty lines before a request line
		}
		raw = append(raw, line...)
		if len(raw) > maxHead {
			return nil, errHeadTooLarge
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			break
		}
		lines = append(lines, s)
	}
	h := &head{raw: raw, header: map[string][]string{}}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("malformed header line %q", l)
		}
		k := canonical(name)
		h.header[k] = append(h.header[k], strings.TrimSpace(value))
	}
	return h, parseStart(h, lines[0])
}

func parseStart(h *head, line string) error {
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 {
		return fmt.Errorf("malformed start line %q", line)
	}
	if strings.HasPrefix(f[0], "HTTP/") {
		code, err := strconv.Atoi(f[1])
		if err != nil || code < 100 || code > 999 {
			return fmt.Errorf("malformed status line %q", line)
		}
		h.status = code
		return nil
	}
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/") {
		return fmt.Errorf("malformed request line %q", line)
	}
	h.method, h.target, h.proto = f[0], f[1], f[2]
	return nil
}

// canonical is the canonical form of a header name (content-length -> Content-Length).
func canonical(name string) string {
	b := []byte(strings.ToLower(name))
	up := true
	for i, c := range b {
		if up && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		up = c == '-'
	}
	return string(b)
}

// requestBody says how a request's body is delimited (RFC 9112 6.3: chunked wins over a
// length; a request with neither has none).
func requestBody(h *head) (bodyKind, int64, error) {
	if te := h.header["Transfer-Encoding"]; len(te) > 0 {
		if !h.hasToken("Transfer-Encoding", "chunked") {
			return 0, 0, fmt.Errorf("request transfer coding %q is not chunked", strings.Join(te, ", "))
		}
		return bodyChunked, 0, nil
	}
	return contentLength(h)
}

// responseBody says how a response to a request with method is delimited.
func responseBody(h *head, method string) (bodyKind, int64, error) {
	if method == "HEAD" || h.status/100 == 1 || h.status == 204 || h.status == 304 {
		return bodyNone, 0, nil
	}
	if len(h.header["Transfer-Encoding"]) > 0 {
		if h.hasToken("Transfer-Encoding", "chunked") {
			return bodyChunked, 0, nil
		}
		return bodyToClose, 0, nil
	}
	if len(h.header["Content-Length"]) == 0 {
		return bodyToClose, 0, nil
	}
	return contentLength(h)
}

func contentLength(h *head) (bodyKind, int64, error) {
	v := h.header["Content-Length"]
	if len(v) == 0 {
		return bodyNone, 0, nil
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 {
		return 0, 0, fmt.Errorf("malformed Content-Length %q", v[0])
	}
	for _, o := range v[1:] {
		if o != v[0] {
			return 0, 0, fmt.Errorf("conflicting Content-Length headers %q", v)
		}
	}
	if n == 0 {
		return bodyNone, 0, nil
	}
	return bodyLength, n, nil
}

// copyBody copies one body of kind from r to w exactly as it was framed (chunk sizes,
// extensions and trailers included). A bodyToClose body is not copied here: the caller
// switches the connection to raw copying.
func copyBody(w io.Writer, r *bufio.Reader, kind bodyKind, n int64) error {
	switch kind {
	case bodyLength:
		_, err := io.CopyN(w, r, n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	case bodyChunked:
		return copyChunked(w, r, nil)
	}
	return nil
}

// copyChunked copies a chunked body from r to w as framed; if data is not nil, the decoded
// body is also appended to it (bounded by limit in readBody).
func copyChunked(w io.Writer, r *bufio.Reader, data *bytes.Buffer) error {
	for {
		line, err := readLine(r)
		if err != nil {
			return err
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		size, err := chunkSize(line)
		if err != nil {
			return err
		}
		if size == 0 {
			break
		}
		dst := w
		if data != nil {
			dst = io.MultiWriter(w, data)
		}
		if _, err := io.CopyN(dst, r, size); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		crlf, err := readLine(r)
		if err != nil {
			return err
		}
		if strings.TrimRight(string(crlf), "\r\n") != "" {
			return errors.New("malformed chunk: data longer than its size")
		}
		if _, err := w.Write(crlf); err != nil {
			return err
		}
	}
	for { // trailer section, up to its empty line
		line, err := readLine(r)
		if err != nil {
			return err
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if strings.TrimRight(string(line), "\r\n") == "" {
			return nil
		}
	}
}

func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errors.New("malformed chunked body: line too long")
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return line, err
}

func chunkSize(line []byte) (int64, error) {
	s := strings.TrimRight(string(line), "\r\n")
	s, _, _ = strings.Cut(s, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(s), 16, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("malformed chunk size %q", s)
	}
	return n, nil
}

// readBody reads a whole request body (at most limit decoded bytes), returning its framed
// bytes as received and the decoded content.
func readBody(r *bufio.Reader, kind bodyKind, n, limit int64) (raw, data []byte, err error) {
	switch kind {
	case bodyNone:
		return nil, nil, nil
	case bodyLength:
		if n > limit {
			return nil, nil, fmt.Errorf("body of %d bytes is over the %d bytes inspected", n, limit)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, nil, err
		}
		return b, b, nil
	case bodyChunked:
		var framed, decoded bytes.Buffer
		lw := &limitWriter{w: &framed, n: 2 * limit}
		if err := copyChunked(lw, r, &decoded); err != nil {
			return nil, nil, err
		}
		if int64(decoded.Len()) > limit {
			return nil, nil, fmt.Errorf("body is over the %d bytes inspected", limit)
		}
		return framed.Bytes(), decoded.Bytes(), nil
	}
	return nil, nil, errors.New("request body delimited by close")
}

type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errors.New("body too large to inspect")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// withLength returns h's raw bytes with its framing headers replaced by a Content-Length of
// n, for a body that was changed.
func withLength(h *head, n int) []byte {
	lines := strings.SplitAfter(string(h.raw), "\n")
	var b strings.Builder
	for i, l := range lines {
		if l == "" {
			continue
		}
		if i > 0 {
			name, _, _ := strings.Cut(l, ":")
			switch canonical(strings.TrimSpace(name)) {
			case "Content-Length", "Transfer-Encoding":
				continue
			}
		}
		if strings.TrimRight(l, "\r\n") == "" {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", n)
		}
		b.WriteString(l)
	}
	return []byte(b.String())
}

// keepsAlive reports whether the connection may carry another request after this one's
// answer: HTTP/1.1 unless either side said close; HTTP/1.0 only if the client asked.
func keepsAlive(req, resp *head) bool {
	if req.hasToken("Connection", "close") || resp.hasToken("Connection", "close") {
		return false
	}
	if req.proto == "HTTP/1.0" {
		return req.hasToken("Connection", "keep-alive") && resp.hasToken("Connection", "keep-alive")
	}
	return true
}
