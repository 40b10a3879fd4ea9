package api

import (
	"bytes"
	"testing"
)

func TestHostConnectRoundTrip(t *testing.T) {
	for _, r := range []HostConnectRequest{{"tcp", 80}, {"udp", 53}, {"tcp", 65535}} {
		var b bytes.Buffer
		if err := WriteHostConnect(&b, r); err != nil {
			t.Fatal(err)
		}
		if b.Len() != 3 {
			t.Fatalf("%v: %d bytes on the wire, want 3", r, b.Len())
		}
		got, err := ReadHostConnect(&b)
		if err != nil || got != r {
			t.Fatalf("round trip of %v: %v, %v", r, got, err)
		}
	}
}

func TestHostConnectRefusesBadRequests(t *testing.T) {
	for _, r := range []HostConnectRequest{{"sctp", 80}, {"tcp", 0}, {"", 1}} {
		if err := WriteHostConnect(&bytes.Buffer{}, r); err == nil {
			t.Errorf("WriteHostConnect(%v) accepted it", r)
		}
	}
	for _, wire := range [][]byte{{'x', 0, 80}, {'t', 0, 0}, {'t', 0}, nil} {
		if r, err := ReadHostConnect(bytes.NewReader(wire)); err == nil {
			t.Errorf("ReadHostConnect(%q) = %v, want an error", wire, r)
		}
	}
}
