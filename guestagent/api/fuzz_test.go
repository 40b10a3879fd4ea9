package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzReadFrame: any byte stream either decodes to frames that re-encode to the same bytes,
// or fails with an error; it never panics nor allocates past MaxFramePayload.
func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, FrameResize, ResizePayload(24, 80))
	WriteFrame(&b, FrameExit, ExitPayload(-1))
	f.Add(b.Bytes())
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var out bytes.Buffer
		for {
			typ, p, err := ReadFrame(r)
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if err := WriteFrame(&out, typ, p); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			switch typ {
			case FrameResize:
				if rows, cols, err := ParseResize(p); err == nil && !bytes.Equal(ResizePayload(rows, cols), p) {
					t.Fatalf("resize %x round trip", p)
				}
			case FrameExit:
				if code, err := ParseExit(p); err == nil && !bytes.Equal(ExitPayload(code), p) {
					t.Fatalf("exit %x round trip", p)
				}
			}
		}
		if !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("frames re-encode to %x, not a prefix of the input %x", out.Bytes(), data)
		}
	})
}

// FuzzReadDatagram: a stream decodes to datagrams or an error, never a panic.
func FuzzReadDatagram(f *testing.F) {
	var b bytes.Buffer
	WriteDatagram(&b, []byte("dns query"))
	f.Add(b.Bytes(), 4)
	f.Fuzz(func(t *testing.T, data []byte, size int) {
		buf := make([]byte, max(0, min(size, MaxDatagram)))
		r := bytes.NewReader(data)
		for {
			n, err := ReadDatagram(r, buf)
			if n > len(buf) {
				t.Fatalf("n %d > buffer %d", n, len(buf))
			}
			if err != nil && !errors.Is(err, io.ErrShortBuffer) {
				return
			}
		}
	})
}

// FuzzDecodeEvent: the host decodes every guest event line (phases, ports, errors) with
// encoding/json; whatever decodes must re-encode and decode to the same value.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"type":"ports","ports":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"container":"c0ffee"}]}`))
	f.Add([]byte(`{"type":"phase","phase":{"name":"docker","seconds":1.5}}`))
	f.Add([]byte(`{"type":"error","message":"data disk: refusing"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var e Event
		if json.Unmarshal(line, &e) != nil {
			return
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", e, err)
		}
		var again Event
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("decode of re-encoded %s: %v", b, err)
		}
		if !reflect.DeepEqual(normal(e), normal(again)) {
			t.Fatalf("round trip changed %+v to %+v", e, again)
		}
	})
}

// normal drops what JSON cannot round-trip exactly: an empty ports list and the monotonic clock.
func normal(e Event) Event {
	if len(e.Ports) == 0 {
		e.Ports = nil
	}
	e.Time = e.Time.Round(0)
	return e
}

// FuzzDecodeExecRequest: an exec request body decodes or fails, and re-encodes stably.
func FuzzDecodeExecRequest(f *testing.F) {
	b, _ := json.Marshal(ExecRequest{})
	f.Add(b)
	f.Fuzz(func(t *testing.T, body []byte) {
		var r ExecRequest
		if json.Unmarshal(body, &r) != nil {
			return
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var again ExecRequest
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("decode of re-encoded %s: %v", b, err)
		}
	})
}
